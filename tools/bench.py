"""Measurements behind ``spikeflight bench`` and the pytest-benchmark suite.

Speed is measured in one process (one core), medians over repeats; expert success over
seeded episodes. Nothing here asserts a target: callers compare and report.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from hardware.errors import SpikeflightError
from hardware.sim.collect import Rollout
from hardware.sim.registry import make_env

ROBOSUITE_REFERENCE = "Door (Panda, OSC_POSE, 20 Hz)"


@dataclass
class SpeedResult:
    name: str
    steps_per_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.steps_per_s)


def _time_steps(env: gym.Env, steps: int, seed: int) -> float:
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


def robosuite_speed(python: str | None = None, steps: int = 500,
                    repeats: int = 5) -> SpeedResult | None:
    """The same measurement on robosuite's Door scene, run by ``tools/robosuite_probe.py``
    under ``python`` (default: this interpreter); ``None`` if robosuite is not there."""
    cmd = [python or sys.executable, str(Path(__file__).with_name("robosuite_probe.py")),
           "--steps", str(steps), "--repeats", str(repeats)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as exc:
        raise SpikeflightError(f"--robosuite-python {python}: no such interpreter") from exc
    if res.returncode != 0:
        if "No module named 'robosuite'" in res.stderr:
            return None
        raise SpikeflightError(f"robosuite probe failed: {res.stderr.strip().splitlines()[-1]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return SpeedResult(f"{ROBOSUITE_REFERENCE}, robosuite {out['robosuite']}",
                       out["steps_per_s"])


def expert_success(task: str, seeds: list[int]) -> tuple[int, float]:
    """(successful episodes, mean episode length) of the scripted expert."""
    roll = Rollout(task)
    eps = [roll.episode(s) for s in seeds]
    return sum(e.success for e in eps), float(np.mean([e.length for e in eps]))
