"""Tests of the ``drawer`` cabin task (long-horizon drawer stowing) and its scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim import rotations as rot
from hardware.sim.tasks.drawer import (
    CLOSED_M,
    INTERIOR_HI_M,
    INTERIOR_LO_M,
    SLOT_M,
    DrawerEnv,
)
from tests.sim.rollout import IDLE, rollout


@pytest.fixture(scope="module")
def env() -> DrawerEnv:
    return DrawerEnv()


def test_do_nothing_does_not_succeed(env: DrawerEnv) -> None:
    for seed in (1100, 1101, 1102):
        start, _ = env.reset(seed=seed)
        ok, _ = rollout(env, seed, lambda _obs: IDLE, success_reward=4.0)
        assert not ok, f"an idle policy succeeded on seed {seed}"
        assert env.opening < 1e-3 and not env.item_inside()
        # the item kept drifting meanwhile (no damping in the cabin)
        moved = np.linalg.norm(env.body_pos("item") - start[14:17])
        assert moved > 0.005 * 0.9 * env.max_steps / 20


def _set_state(env: DrawerEnv, opening_m: float, item_local: np.ndarray) -> None:
    """Drawer at ``opening_m``, item at rest, upright, at drawer-frame ``item_local``."""
    env.reset(seed=7)
    env.data.qpos[env.model.joint("drawer_slide").qposadr[0]] = opening_m
    mujoco.mj_forward(env.model, env.data)
    env.set_free_body("item", env.from_drawer(item_local), np.array([1.0, 0.0, 0.0, 0.0]),
                      np.zeros(3), np.zeros(3))
    mujoco.mj_forward(env.model, env.data)


EPS = 1e-3


@pytest.mark.parametrize(("opening", "local", "expected"), [
    (CLOSED_M - EPS, SLOT_M, True),
    (CLOSED_M + EPS, SLOT_M, False),
    (0.0, np.array([SLOT_M[0], INTERIOR_HI_M[1] - EPS, SLOT_M[2]]), True),
    (0.0, np.array([SLOT_M[0], INTERIOR_HI_M[1] + EPS, SLOT_M[2]]), False),
    (0.0, np.array([INTERIOR_LO_M[0] + EPS, 0.0, SLOT_M[2]]), True),
    (0.0, np.array([INTERIOR_LO_M[0] - EPS, 0.0, SLOT_M[2]]), False),
    (0.0, np.array([SLOT_M[0], 0.0, INTERIOR_HI_M[2] - EPS]), True),
    (0.0, np.array([SLOT_M[0], 0.0, INTERIOR_HI_M[2] + EPS]), False),
])
def test_success_criterion_threshold(env: DrawerEnv, opening: float, local: np.ndarray,
                                     expected: bool) -> None:
    _set_state(env, opening, local)
    reward, success = env._evaluate()
    assert success is expected
    assert (reward >= 4.0) is expected


def test_success_needs_the_item_released(env: DrawerEnv) -> None:
    _set_state(env, 0.0, SLOT_M)
    assert env._evaluate()[1]
    env.grasped = "item"
    try:
        assert not env._evaluate()[1]
    finally:
        env.grasped = None


def test_observation_layout(env: DrawerEnv) -> None:
    layout = {f.name: f for f in env.obs_layout()}
    assert env.observation_space.shape == (57,)
    assert sum(f.size for f in layout.values()) == 57
    _set_state(env, 0.12, SLOT_M)
    pos, quat = np.array([0.05, -0.3, 0.1]), np.array([0.9, 0.1, -0.3, 0.2])
    quat /= np.linalg.norm(quat)
    linvel, angvel = np.array([0.01, -0.02, 0.005]), np.array([0.1, 0.0, -0.15])
    env.set_free_body("item", pos, quat, linvel, angvel)
    mujoco.mj_forward(env.model, env.data)
    obs = env._obs()
    assert obs[layout["drawer_opening"].slice] == pytest.approx([0.12])
    np.testing.assert_allclose(obs[layout["item_pos"].slice], pos)
    r_item = rot.quat_to_mat(quat)
    np.testing.assert_allclose(obs[layout["item_rot6"].slice],
                               np.concatenate([r_item[:, 0], r_item[:, 2]]), atol=1e-9)
    r_g = env.gripper_mat
    np.testing.assert_allclose(obs[layout["item_z_g"].slice], r_g.T @ r_item[:, 2], atol=1e-9)
    np.testing.assert_allclose(obs[layout["item_y_g"].slice], r_g.T @ r_item[:, 1], atol=1e-9)
    rel = env.site_pos("item_handle") - env.grip_pos
    np.testing.assert_allclose(obs[layout["item_handle_rel"].slice], rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["item_handle_rel_g"].slice], r_g.T @ rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["item_rel"].slice], env.body_pos("item") - env.grip_pos,
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["drawer_handle_rel"].slice],
                               env.site_pos("drawer_handle") - env.grip_pos, atol=1e-12)
    np.testing.assert_allclose(obs[layout["item_in_drawer"].slice], env.to_drawer(pos),
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["item_linvel"].slice], linvel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["item_angvel"].slice], angvel, atol=1e-12)
    handle = obs[layout["drawer_handle_pos"].slice]
    np.testing.assert_allclose(handle, env.site_pos("drawer_handle"))
    cabinet = env.model.body_pos[env.model.body("cabinet").id]
    np.testing.assert_allclose(handle, cabinet + np.array([-0.12 - 0.05, 0.0, 0.02]))
    np.testing.assert_allclose(obs[layout["gripper_pos"].slice], env.gripper_pos)
    # the drawer velocity field follows the slide joint
    env.data.qvel[env.model.joint("drawer_slide").dofadr[0]] = 0.07
    assert env._obs()[layout["drawer_vel"].slice] == pytest.approx([0.07])
