"""Rollout helpers shared by the task tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hardware.sim.cabin import CabinEnv

Policy = Callable[[np.ndarray], np.ndarray]
IDLE = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # hold still, gripper open


def rollout(env: CabinEnv, seed: int, policy: Policy,
            success_reward: float = 1.0) -> tuple[bool, int]:
    """One seeded episode: (success, steps). A terminated episode must report success and
    a reward of at least ``success_reward`` on its last step."""
    obs, _ = env.reset(seed=seed)
    for t in range(env.max_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated:
            assert info["success"] and reward >= success_reward
            return True, t + 1
        if truncated:
            break
    return False, env.max_steps


def assert_gripper_frame_copies(env: CabinEnv, obs: np.ndarray,
                                pairs: tuple[tuple[str, str], ...]) -> None:
    """Each ``(world field, gripper-frame field)`` of ``pairs`` holds the same vector, the
    second turned into the gripper's frame."""
    layout = {f.name: f.slice for f in env.obs_layout()}
    r_g = env.gripper_mat
    for world, in_gripper in pairs:
        np.testing.assert_allclose(obs[layout[in_gripper]], r_g.T @ obs[layout[world]],
                                   atol=1e-12, err_msg=in_gripper)
