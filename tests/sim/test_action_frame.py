"""Action chunks in the gripper's frame (``hardware/sim/action_frame.py``): exact rotations
of the position and rotation parts, the grip untouched, and a clear error where a task's
observations cannot give the frame."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim.action_frame import ActionFrame, ActionFrameError
from hardware.sim.layout import ObsField
from hardware.sim.registry import make_env


def _states(task: str, n: int = 3) -> tuple[list, np.ndarray]:
    """``n`` environments a few random steps into an episode, and their observations."""
    envs, obs = [], []
    rng = np.random.default_rng(0)
    for seed in range(n):
        env = make_env(task).unwrapped
        o, _ = env.reset(seed=seed)
        for _ in range(5):
            o, *_ = env.step(rng.uniform(-1, 1, 7))
        envs.append(env)
        obs.append(o)
    return envs, np.stack(obs)


def test_the_gripper_frame_is_the_gripper_s_attitude() -> None:
    """A world-frame step in the gripper frame is the step as the gripper sees it
    (``CabinEnv.in_gripper``), for the position and the rotation part; the grip stays."""
    envs, obs = _states("stow")
    frame = ActionFrame.for_layout("gripper", envs[0].obs_layout())
    chunk = np.random.default_rng(1).uniform(-1, 1, (len(envs), 4, 7))
    turned = frame.from_world(obs, chunk)
    for b, env in enumerate(envs):
        for h in range(4):
            np.testing.assert_allclose(turned[b, h, :3], env.in_gripper(chunk[b, h, :3]),
                                       atol=1e-12)
            np.testing.assert_allclose(turned[b, h, 3:6], env.in_gripper(chunk[b, h, 3:6]),
                                       atol=1e-12)
    np.testing.assert_array_equal(turned[..., 6], chunk[..., 6])
    assert not np.allclose(turned[..., :6], chunk[..., :6])


def test_to_world_undoes_from_world_and_keeps_lengths() -> None:
    envs, obs = _states("hatch")
    frame = ActionFrame.for_layout("gripper", envs[0].obs_layout())
    chunk = np.random.default_rng(2).uniform(-1, 1, (len(envs), 4, 7))
    turned = frame.from_world(obs, chunk)
    np.testing.assert_allclose(frame.to_world(obs, turned), chunk, atol=1e-12)
    for part in (slice(0, 3), slice(3, 6)):
        np.testing.assert_allclose(np.linalg.norm(turned[..., part], axis=-1),
                                   np.linalg.norm(chunk[..., part], axis=-1), atol=1e-12)


def test_the_world_frame_changes_nothing() -> None:
    chunk = np.arange(2 * 4 * 7, dtype=float).reshape(2, 4, 7)
    frame = ActionFrame.for_layout("world", None)
    np.testing.assert_array_equal(frame.to_world(np.zeros((2, 5)), chunk), chunk)
    np.testing.assert_array_equal(frame.from_world(np.zeros((2, 5)), chunk), chunk)


def test_a_task_without_the_gripper_s_attitude_cannot_use_the_gripper_frame() -> None:
    layout = [ObsField("box_pos", 0, 3, "box position, m")]
    for fields in (layout, None):
        with pytest.raises(ActionFrameError, match="needs the observation field gripper_rot6"):
            ActionFrame.for_layout("gripper", fields)
    with pytest.raises(ActionFrameError, match="must be one of world, gripper, got 'payload'"):
        ActionFrame.for_layout("payload", make_env("stow").unwrapped.obs_layout())
