"""Tests of the ``panel`` cabin task (sequential panel operation) and its scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim import rotations as rot
from hardware.sim.experts.panel import PanelExpert
from hardware.sim.tasks.panel import (
    ARM_TRAVEL_M,
    PIN_LEN_M,
    PLUG_HALF_LEN_M,
    PanelEnv,
)
from tests.sim.rollout import IDLE, assert_gripper_frame_copies, rollout


@pytest.fixture(scope="module")
def env() -> PanelEnv:
    return PanelEnv()


def test_do_nothing_does_not_succeed(env: PanelEnv) -> None:
    for seed in (1100, 1101, 1102, 1103):
        ok, _ = rollout(env, seed, lambda _obs: IDLE)
        assert not ok, f"an idle policy solved the panel on seed {seed}"
        assert not env.armed


def test_inserting_without_pressing_does_not_count(env: PanelEnv) -> None:
    """The expert's catch-and-insert alone (it is shown an armed socket without a fault,
    so it skips the button) seats the plug but faults."""
    expert = PanelExpert(env)
    obs, _ = env.reset(seed=1200)

    def skip_press(obs: np.ndarray) -> np.ndarray:
        latches = env.armed, env.order_fault
        env.armed, env.order_fault = True, False
        try:
            return expert.act(obs)
        finally:
            env.armed, env.order_fault = latches

    faulted = False
    for _ in range(env.max_steps):
        obs, _, terminated, truncated, info = env.step(skip_press(obs))
        faulted |= env.order_fault
        assert not terminated and not info["success"]
        if truncated:
            break
    assert faulted and not env.armed
    assert env.insertion_error()[0] > 0.025  # the plug is in, just out of order


def _place(env: PanelEnv, depth: float, radial: float, tilt_deg: float,
           travel: float = 0.01) -> None:
    """Still plug with its tip ``depth`` past the socket mouth, ``radial`` off the axis,
    axis tilted by ``tilt_deg`` from the socket axis; button at ``travel``."""
    m, d = env.model, env.data
    d.qpos[m.jnt_qposadr[m.joint("button_slide").id]] = travel
    panel_quat = d.xquat[m.body("panel").id].copy()
    r = rot.quat_to_mat(panel_quat)
    e1, e2, n = r[:, 0], r[:, 1], r[:, 2]
    s = env.site_pos("socket")
    quat = rot.quat_mul(rot.axisangle_to_quat(e2 * np.deg2rad(tilt_deg)), panel_quat)
    p = rot.quat_to_mat(quat)[:, 2]
    tip = s - depth * n + radial * e1
    env.set_free_body("plug", tip + (PIN_LEN_M + PLUG_HALF_LEN_M) * p, quat,
                      np.zeros(3), np.zeros(3))
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(env.insertion_error(), [depth, radial, np.deg2rad(tilt_deg)],
                               atol=1e-9)


@pytest.mark.parametrize(
    ("inside", "outside"),
    [
        ((0.0255, 0.0, 0.0), (0.0245, 0.0, 0.0)),  # depth >= 25 mm
        ((0.028, 0.0028, 0.0), (0.028, 0.0032, 0.0)),  # radial < 3 mm
        ((0.028, 0.0, 4.8), (0.028, 0.0, 5.2)),  # tilt < 5 deg
    ],
)
def test_success_criterion_flips_at_threshold(env: PanelEnv, inside, outside) -> None:
    env.reset(seed=7)
    _place(env, *inside)
    reward_in, ok = env._evaluate()
    assert env.armed and not env.order_fault and ok and reward_in > 1.0
    _place(env, *outside)
    reward_out, ok = env._evaluate()
    assert not ok and reward_out < 1.0


def test_arming_threshold_and_order(env: PanelEnv) -> None:
    env.reset(seed=8)
    seated = (0.028, 0.0, 0.0)
    # the button just short of the arming travel: a seated plug does not count, and faults
    _place(env, *seated, travel=ARM_TRAVEL_M - 0.0005)
    assert env._evaluate()[1] is False
    assert not env.armed and env.order_fault
    # pressing now (plug still in) arms the socket but the premature insertion still counts
    _place(env, *seated, travel=ARM_TRAVEL_M + 0.0005)
    assert not env._evaluate()[1]
    assert env.armed and env.order_fault
    # the button springs back out; armed is latched. Withdraw, re-insert: success.
    _place(env, -0.01, 0.0, 0.0, travel=0.0)
    assert not env._evaluate()[1]
    assert env.armed and not env.order_fault
    _place(env, *seated, travel=0.0)
    assert env._evaluate()[1]
    # a reset clears both latches
    env.reset(seed=8)
    assert not env.armed and not env.order_fault


def test_observation_matches_layout(env: PanelEnv) -> None:
    layout = {f.name: f for f in env.obs_layout()}
    assert sum(f.size for f in layout.values()) == env.observation_space.shape[0] == 75
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape
    pos, linvel, angvel = (np.array([0.05, 0.1, 0.0]), np.array([0.01, 0.02, -0.03]),
                           np.array([0.1, -0.05, 0.02]))
    quat = rot.axisangle_to_quat(np.array([0.0, 0.5, 0.2]))
    env.set_free_body("plug", pos, quat, linvel, angvel)
    m, d = env.model, env.data
    d.qpos[m.jnt_qposadr[m.joint("button_slide").id]] = 0.004
    mujoco.mj_forward(m, d)
    obs = env._obs()
    np.testing.assert_allclose(obs[layout["plug_pos"].slice], pos, atol=1e-9)
    np.testing.assert_allclose(obs[layout["plug_axis"].slice], rot.quat_to_mat(quat)[:, 2],
                               atol=1e-9)
    np.testing.assert_allclose(obs[layout["plug_linvel"].slice], linvel, atol=1e-9)
    np.testing.assert_allclose(obs[layout["plug_angvel"].slice], angvel, atol=1e-9)
    np.testing.assert_allclose(obs[layout["button_travel"].slice], [0.004])
    s, n = env.socket_frame()
    np.testing.assert_allclose(obs[layout["socket_pos"].slice], s)
    np.testing.assert_allclose(obs[layout["socket_axis"].slice], n)
    np.testing.assert_allclose(obs[layout["tip_rel"].slice], env.site_pos("plug_tip") - s)
    # the button's rest face does not move with the travel
    np.testing.assert_allclose(obs[layout["button_pos"].slice],
                               env.site_pos("button_face") + 0.004 * n, atol=1e-12)
    assert obs[layout["armed"].slice][0] == 0.0 and obs[layout["order_fault"].slice][0] == 0.0
    r_g = env.gripper_mat
    rel = env.site_pos("plug_handle") - env.grip_pos
    np.testing.assert_allclose(obs[layout["plug_rel"].slice], env.body_pos("plug") - env.grip_pos,
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel"].slice], rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel_g"].slice], r_g.T @ rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["plug_axis_g"].slice], r_g.T @ env.plug_axis(),
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["socket_axis_g"].slice], r_g.T @ n, atol=1e-12)
    np.testing.assert_allclose(obs[layout["button_rel_g"].slice],
                               r_g.T @ (env.button_rest_pos() - env.gripper_pos), atol=1e-12)
    np.testing.assert_allclose(obs[layout["gripper_pos"].slice], env.gripper_pos)
    assert_gripper_frame_copies(env, obs, tuple((f, f"{f}_g") for f in (
        "plug_rel", "plug_linvel", "plug_angvel", "handle_vel", "tip_rel")))
