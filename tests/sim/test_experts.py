"""The memoryless scripted experts: phases derived from the state, taking over anywhere."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim.registry import TASKS, make_env, make_expert


def _phases(task: str, seed: int) -> tuple[list[int], bool]:
    env = make_env(task).unwrapped
    expert = make_expert(task, env)
    obs, _ = env.reset(seed=seed)
    phases = []
    for _ in range(env.max_steps):
        phases.append(expert.phase_from_state())
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        assert expert.phase == phases[-1]  # act() follows the state's phase
        if terminated or truncated:
            return phases, terminated
    return phases, False


@pytest.mark.parametrize("task", list(TASKS))
def test_phase_from_state_agrees_with_a_stateful_phase_machine(task: str) -> None:
    """Along expert episodes, a stateful machine that steps through the task's phases in
    order (each entered once, never back) holds the phase derived from the state at
    every step, and reaches the last one."""
    names = make_expert(task, make_env(task)).PHASES
    for seed in (0, 1, 2):
        phases, ok = _phases(task, seed)
        assert ok, f"{task} seed {seed}: the expert failed"
        stateful = 0
        for t, p in enumerate(phases):
            if p == stateful + 1:
                stateful = p  # the machine's next transition
            assert p == stateful, (f"{task} seed {seed} step {t}: state says {names[p]}, "
                                   f"the phase machine is in {names[stateful]}")
        assert stateful == len(names) - 1


@pytest.mark.parametrize("task", list(TASKS))
def test_an_expert_finishes_another_episode_from_its_middle(task: str) -> None:
    """Snapshot an expert episode part-way (grasp held, latches set), restore it into a
    fresh env: a fresh expert instance, which never saw the start, finishes it."""
    src = make_env(task).unwrapped
    first = make_expert(task, src)
    rng = np.random.default_rng(7)
    for seed in (30, 31):
        obs, _ = src.reset(seed=seed)
        cut = int(rng.integers(10, 40))
        for _ in range(cut):
            obs, *_ = src.step(first.act(obs))
        snapshot = src.get_state()
        env = make_env(task).unwrapped
        env.reset(seed=1234)
        obs = env.set_state(snapshot)
        expert = make_expert(task, env)
        terminated = False
        for _ in range(env.max_steps - cut):
            obs, _, terminated, truncated, _ = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert terminated, f"{task}: expert did not finish seed {seed} from step {cut}"


def test_a_gripper_closed_on_nothing_opens_and_tries_again() -> None:
    """Close the gripper next to the hatch's handle (outside the grasp tolerance): the
    expert opens it again and then grasps."""
    env = make_env("hatch").unwrapped
    expert = make_expert("hatch", env)
    obs, _ = env.reset(seed=5)
    while expert.phase_from_state() != 1:  # INSERT
        obs, *_ = env.step(expert.act(obs))
    for _ in range(6):
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    assert env.grasped is None and env.finger_opening < 0.005
    for _ in range(40):
        obs, *_ = env.step(expert.act(obs))
        if env.grasped:
            break
    assert env.grasped == "latch"
