"""Tests of the ``stow`` cabin task (catch a tumbling payload, stow it in the locker bay)
and its scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim import rotations as rot
from hardware.sim.experts.stow import StowExpert
from hardware.sim.tasks.stow import (
    BAY_CENTER_M,
    BAY_HALF_M,
    DRIFT_SPEED_MPS,
    GRIPPER_START_M,
    START_DIST_M,
    STOW_TOP_Z_M,
    TUMBLE_RADPS,
    StowEnv,
)
from tests.sim.rollout import IDLE, assert_gripper_frame_copies, rollout


@pytest.fixture(scope="module")
def env() -> StowEnv:
    return StowEnv()


def test_do_nothing_does_not_succeed(env: StowEnv) -> None:
    for seed in (1100, 1101, 1102, 1103):
        ok, _ = rollout(env, seed, lambda _obs: IDLE)
        assert not ok, f"an idle policy stowed the payload on seed {seed}"


def test_resets_drift_and_tumble_within_documented_ranges(env: StowEnv) -> None:
    for seed in range(1200, 1230):
        env.reset(seed=seed)
        v, w = env.payload_velocity()
        c = env.body_pos("payload")
        assert DRIFT_SPEED_MPS[0] <= np.linalg.norm(v) <= DRIFT_SPEED_MPS[1]
        assert TUMBLE_RADPS[0] <= np.linalg.norm(w) <= TUMBLE_RADPS[1]
        assert START_DIST_M[0] <= np.linalg.norm(c - GRIPPER_START_M) <= START_DIST_M[1]
        assert c[2] >= 0.12 and np.linalg.norm(c) <= 0.75
        assert not env.in_stow_volume()


def _place(env: StowEnv, offset: np.ndarray, linvel: np.ndarray, angvel: np.ndarray,
           held: bool) -> tuple[float, bool]:
    """Put the upright payload at ``BAY_CENTER_M + offset`` with the given velocities and
    return ``_evaluate()`` of that state."""
    env.reset(seed=5)
    env.set_free_body("payload", BAY_CENTER_M + offset, np.array([1.0, 0.0, 0.0, 0.0]),
                      linvel, angvel)
    mujoco.mj_forward(env.model, env.data)
    env.grasped = "payload" if held else None
    try:
        return env._evaluate()
    finally:
        env.grasped = None


_TOP = STOW_TOP_Z_M - BAY_CENTER_M[2]  # highest stowed centre, relative to the bay centre
_HX = BAY_HALF_M[0]
_HY = BAY_HALF_M[1]
_Z_FLOOR = -BAY_HALF_M[2]


@pytest.mark.parametrize(
    ("inside", "outside"),
    [
        ({"offset": (_HX - 0.001, 0, 0)}, {"offset": (_HX + 0.001, 0, 0)}),  # +x wall
        ({"offset": (0, -_HY + 0.001, 0)}, {"offset": (0, -_HY - 0.001, 0)}),  # -y wall
        ({"offset": (0, 0, _TOP - 0.001)}, {"offset": (0, 0, _TOP + 0.001)}),  # 4 cm under rim
        ({"offset": (0, 0, _Z_FLOOR + 0.001)}, {"offset": (0, 0, _Z_FLOOR - 0.001)}),  # floor
        ({"linvel": (0.0, 0.019, 0.0)}, {"linvel": (0.0, 0.021, 0.0)}),  # speed 0.02 m/s
        ({"angvel": (0.0, 0.0, 0.49)}, {"angvel": (0.0, 0.0, 0.51)}),  # spin 0.5 rad/s
        ({"held": False}, {"held": True}),  # must be released
    ],
)
def test_success_criterion_flips_at_threshold(env: StowEnv, inside: dict,
                                              outside: dict) -> None:
    def place(kw: dict) -> tuple[float, bool]:
        args = {"offset": np.zeros(3), "linvel": np.zeros(3), "angvel": np.zeros(3)}
        args.update({k: np.asarray(v, float) for k, v in kw.items() if k != "held"})
        return _place(env, args["offset"], args["linvel"], args["angvel"],
                      held=kw.get("held", False))

    r_in, ok_in = place(inside)
    r_out, ok_out = place(outside)
    assert ok_in and not ok_out
    assert r_in >= 1.0 > r_out  # the success step pays the bonus, nothing else does


def test_observation_matches_layout(env: StowEnv) -> None:
    layout = {f.name: f.slice for f in env.obs_layout()}
    assert env.observation_space.shape == (63,)
    env.reset(seed=11)
    pos, quat = np.array([0.1, -0.2, 0.3]), rot.axisangle_to_quat(np.array([0.2, -0.5, 0.9]))
    v, w = np.array([0.03, -0.01, 0.02]), np.array([0.4, 0.1, -0.3])
    env.set_free_body("payload", pos, quat, v, w)
    mujoco.mj_forward(env.model, env.data)
    obs = env._obs()
    np.testing.assert_allclose(obs[layout["payload_pos"]], pos, atol=1e-12)
    r_p, r_g = rot.quat_to_mat(quat), env.gripper_mat
    np.testing.assert_allclose(obs[layout["payload_rot6"]],
                               np.concatenate([r_p[:, 0], r_p[:, 2]]), atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_normal_g"]], r_g.T @ r_p[:, 2], atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_bar_g"]], r_g.T @ r_p[:, 0], atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel_g"]],
                               r_g.T @ (env.site_pos("payload_handle") - env.grip_pos),
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["payload_linvel"]], v, atol=1e-12)
    np.testing.assert_allclose(obs[layout["payload_angvel"]], w, atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel"]],
                               env.site_pos("payload_handle") - env.grip_pos, atol=1e-12)
    np.testing.assert_allclose(obs[layout["payload_rel"]], pos - env.grip_pos, atol=1e-12)
    # the handle sits 6 cm out along the payload's z axis
    np.testing.assert_allclose(env.site_pos("payload_handle"),
                               pos + 0.06 * rot.quat_to_mat(quat)[:, 2], atol=1e-12)
    np.testing.assert_allclose(obs[layout["bay_rel"]], BAY_CENTER_M - pos, atol=1e-12)
    assert_gripper_frame_copies(env, obs, tuple((f, f"{f}_g") for f in (
        "payload_rel", "payload_linvel", "payload_angvel", "handle_vel", "bay_rel")))
    np.testing.assert_allclose(obs[layout["gripper_pos"]], env.gripper_pos)
    assert obs[layout["grasped"]][0] == 0.0


def test_grasp_flag_and_tumble_arrest(env: StowEnv) -> None:
    """Run the expert until it holds the payload: the flag turns on, and holding still
    damps the tumble well below its initial rate."""
    expert = StowExpert(env)
    obs, _ = env.reset(seed=1010)
    expert.reset()
    w0 = np.linalg.norm(env.payload_velocity()[1])
    grasp_field = {f.name: f.slice for f in env.obs_layout()}["grasped"]
    for _ in range(120):
        obs, *_ = env.step(expert.act(obs))
        if env.grasped:
            break
    assert env.grasped == "payload" and obs[grasp_field][0] == 1.0
    for _ in range(10):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert np.linalg.norm(env.payload_velocity()[1]) < 0.2 * w0
