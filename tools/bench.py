"""Measurements behind ``spikeflight bench`` and the pytest-benchmark suite.

Speed is measured in one process (one core), medians over repeats; expert success over
seeded episodes. Nothing here asserts a target: callers compare and report.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from hardware.sim.collect import Rollout
from hardware.sim.registry import make_env

ROBOSUITE_REFERENCE = "robosuite 1.5 Door (Panda, OSC_POSE, 20 Hz)"


@dataclass
class SpeedResult:
    name: str
    steps_per_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.steps_per_s)


def _time_steps(env, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(steps, *env.action_space.shape))
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def env_speed(task: str, steps: int = 2000, repeats: int = 5, seed: int = 0) -> SpeedResult:
    """Control steps per second under uniform random actions, resets included."""
    env = make_env(task)
    try:
        _time_steps(env, min(steps, 200), seed)  # warm-up
        return SpeedResult(task, [_time_steps(env, steps, seed + r) for r in range(repeats)])
    finally:
        env.close()


def robosuite_speed(steps: int = 500, repeats: int = 3) -> SpeedResult | None:
    """The same measurement on robosuite's Door scene, or ``None`` if not installed."""
    try:
        import robosuite
    except ImportError:
        return None
    env = robosuite.make("Door", robots="Panda", has_renderer=False,
                         has_offscreen_renderer=False, use_camera_obs=False, control_freq=20,
                         horizon=10**6)
    spec_low, spec_high = env.action_spec

    class _Adapter:  # robosuite's step/reset to the gymnasium shape used above
        action_space = type("S", (), {"low": spec_low, "high": spec_high,
                                      "shape": spec_low.shape})()

        def reset(self, seed=None):
            env.reset()

        def step(self, a):
            env.step(a)
            return None, 0.0, False, False, {}

    adapter = _Adapter()
    _time_steps(adapter, 50, 0)
    runs = [_time_steps(adapter, steps, r) for r in range(repeats)]
    return SpeedResult(ROBOSUITE_REFERENCE, runs)


def expert_success(task: str, seeds: list[int]) -> tuple[int, float]:
    """(successful episodes, mean episode length) of the scripted expert."""
    roll = Rollout(task)
    eps = [roll.episode(s) for s in seeds]
    return sum(e.success for e in eps), float(np.mean([e.length for e in eps]))
