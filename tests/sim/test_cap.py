"""Tests of the ``cap`` cabin task (precision container capping) and its scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim import rotations as rot
from hardware.sim.tasks.cap import (
    CONTAINER_HALF_HEIGHT_M,
    LID_HALF_THICKNESS_M,
    CapEnv,
)
from tests.sim.rollout import IDLE, rollout


@pytest.fixture(scope="module")
def env() -> CapEnv:
    return CapEnv()


def test_do_nothing_does_not_succeed(env: CapEnv) -> None:
    for seed in (1100, 1101, 1102, 1103):
        ok, _ = rollout(env, seed, lambda _obs: IDLE)
        assert not ok, f"an idle policy capped the container on seed {seed}"


def _place(env: CapEnv, radial_m: float, axial_m: float, tilt_deg: float) -> None:
    """Put the lid on a still, tilted container: seat point ``axial_m`` above the rim
    plane and ``radial_m`` off the axis, lid axis tilted by ``tilt_deg``."""
    env.reset(seed=7)
    c_pos = np.array([0.2, 0.05, 0.0])
    c_quat = rot.axisangle_to_quat(np.array([0.3, -0.2, 0.4]))
    env.set_free_body("container", c_pos, c_quat, np.zeros(3), np.zeros(3))
    r = rot.quat_to_mat(c_quat)
    a, e1, e2 = r[:, 2], r[:, 0], r[:, 1]
    rim = c_pos + CONTAINER_HALF_HEIGHT_M * a
    l_quat = rot.quat_mul(rot.axisangle_to_quat(e2 * np.deg2rad(tilt_deg)), c_quat)
    n = rot.quat_to_mat(l_quat)[:, 2]
    seat = rim + axial_m * a + radial_m * e1
    env.set_free_body("lid", seat + LID_HALF_THICKNESS_M * n, l_quat, np.zeros(3), np.zeros(3))
    mujoco.mj_forward(env.model, env.data)
    np.testing.assert_allclose(env.seat_error(), [axial_m, radial_m, np.deg2rad(tilt_deg)],
                               atol=1e-9)


@pytest.mark.parametrize(
    ("inside", "outside"),
    [
        ((0.0045, -0.0005, 0.0), (0.0055, -0.0005, 0.0)),  # radial 5 mm
        ((0.0, -0.0005, 4.5), (0.0, -0.0005, 5.5)),  # tilt 5 deg
        ((0.0, 0.0025, 4.0), (0.0, 0.0035, 4.0)),  # axial 3 mm (tilted: edge still touches)
        ((0.0, -0.0005, 0.0), (0.0, 0.0005, 0.0)),  # in contact vs hovering 0.5 mm above
    ],
)
def test_success_criterion_flips_at_threshold(env: CapEnv, inside, outside) -> None:
    _place(env, *inside)
    assert env.lid_touches_container()
    assert env._evaluate()[1]
    _place(env, *outside)
    assert not env._evaluate()[1]


def test_observation_matches_layout(env: CapEnv) -> None:
    layout = {f.name: f for f in env.obs_layout()}
    assert sum(f.size for f in layout.values()) == env.observation_space.shape[0] == 57
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape
    pos, linvel, angvel = np.array([0.1, -0.2, 0.3]), np.array([0.01, 0.02, -0.03]), \
        np.array([0.1, -0.05, 0.02])
    quat = rot.axisangle_to_quat(np.array([0.0, 0.5, 0.0]))
    env.set_free_body("container", pos, quat, linvel, angvel)
    mujoco.mj_forward(env.model, env.data)
    obs = env._obs()
    axis = rot.quat_to_mat(quat)[:, 2]
    np.testing.assert_allclose(obs[layout["container_axis"].slice], axis, atol=1e-9)
    np.testing.assert_allclose(obs[layout["rim_pos"].slice],
                               pos + CONTAINER_HALF_HEIGHT_M * axis, atol=1e-9)
    np.testing.assert_allclose(obs[layout["container_linvel"].slice], linvel, atol=1e-9)
    np.testing.assert_allclose(obs[layout["container_angvel"].slice], angvel, atol=1e-9)
    np.testing.assert_allclose(obs[layout["lid_seat_pos"].slice], env.site_pos("lid_seat"))
    np.testing.assert_allclose(obs[layout["seat_error"].slice], env.seat_error())
    np.testing.assert_allclose(obs[layout["gripper_pos"].slice], env.gripper_pos)
    r_g = env.gripper_mat
    rel = env.site_pos("lid_handle") - env.grip_pos
    np.testing.assert_allclose(obs[layout["handle_rel"].slice], rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel_g"].slice], r_g.T @ rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["lid_axis_g"].slice], r_g.T @ env.lid_axis(),
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["container_axis_g"].slice], r_g.T @ axis, atol=1e-9)
    np.testing.assert_allclose(obs[layout["seat_rel"].slice],
                               env.site_pos("rim") - env.site_pos("lid_seat"), atol=1e-12)
