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
    every step, and reaches the expert's final phase."""
    expert = make_expert(task, make_env(task))
    names = expert.PHASES
    for seed in (0, 1, 2):
        phases, ok = _phases(task, seed)
        assert ok, f"{task} seed {seed}: the expert failed"
        stateful = 0
        for t, p in enumerate(phases):
            if p == stateful + 1:
                stateful = p  # the machine's next transition
            assert p == stateful, (f"{task} seed {seed} step {t}: state says {names[p]}, "
                                   f"the phase machine is in {names[stateful]}")
        assert stateful >= expert.final_phase


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


def test_stow_s_expert_backs_off_from_a_payload_released_before_it_is_at_rest() -> None:
    """The expert lets go of the payload in the bay while it still moves faster than the
    criterion allows (as a learner that opens early does); then it does not catch it again
    but backs straight up (``clear``), and the payload settles into a success."""
    from hardware.sim.experts.stow import CLEAR, RELEASE

    env = make_env("stow").unwrapped
    expert = make_expert("stow", env)
    obs, _ = env.reset(seed=3)
    while expert.phase_from_state() != RELEASE:
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        assert not (terminated or truncated), "the expert never reached its release"
    assert np.linalg.norm(env.payload_velocity()[0]) > 0.02  # no success yet
    obs, _, terminated, *_ = env.step(expert.act(obs))
    assert env.grasped is None and not terminated
    assert expert.phase_from_state() == CLEAR
    for _ in range(env.max_steps - env.steps):
        before = env.grip_pos
        action = expert.act(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        assert expert.phase == CLEAR  # never back to catching it
        assert action[6] < 0 and action[2] >= 0 and np.allclose(action[:2], 0.0)
        assert env.grip_pos[2] > before[2] - 0.005
        if terminated or truncated:
            break
    assert terminated, "the released payload did not settle into a success"
