"""The episode monitor names why a cabin episode failed (``hardware/sim/monitor.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hardware.sim.monitor import KNOCK_SPEED_MPS, EpisodeMonitor
from hardware.sim.registry import TASKS, make_env, make_expert

IDLE = np.zeros(7)


def _watch(task: str, seed: int = 10_000) -> tuple[Any, np.ndarray, EpisodeMonitor]:
    """(env, first observation, monitor) of a fresh episode of ``task``."""
    env = make_env(task)
    obs, _ = env.reset(seed=seed)
    return env, obs, EpisodeMonitor(env.unwrapped, make_expert(task, env))


@pytest.mark.parametrize("task", list(TASKS))
def test_an_expert_episode_is_never_flagged_and_reaches_the_last_phase(task: str) -> None:
    env, obs, mon = _watch(task)
    expert = mon.expert
    for _ in range(env.unwrapped.max_steps):
        obs, _, term, trunc, _ = env.step(expert.act(obs))
        mon.observe()
        if term or trunc:
            break
    assert term, "the expert should succeed on this seed"
    assert not mon.knocked and not mon.order_fault
    assert mon.held == {g.body for g in env.unwrapped.GRASPS}
    assert mon.max_phase == len(expert.PHASES) - 1
    assert mon.furthest() == expert.PHASES[-1]


def test_an_idle_gripper_misses_the_catch() -> None:
    env, _, mon = _watch("stow")
    for _ in range(20):
        env.step(IDLE)
        mon.observe()
    assert mon.category() == "missed catch"
    assert mon.furthest() == mon.expert.PHASES[mon.expert.phase_from_state()]


def test_a_blow_before_the_catch_is_knocked_away() -> None:
    env, _, mon = _watch("stow")
    cab = env.unwrapped
    cab.set_free_body("payload", cab.body_pos("payload"), cab.body_quat("payload"),
                      np.array([KNOCK_SPEED_MPS + 0.05, 0.0, 0.0]), np.zeros(3))
    env.step(IDLE)
    mon.observe()
    assert mon.category() == "knocked away"


def test_an_order_fault_outranks_everything() -> None:
    env, _, mon = _watch("panel")
    env.unwrapped.order_fault = True
    mon.observe()
    assert mon.category() == "wrong order"
