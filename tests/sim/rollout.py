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
