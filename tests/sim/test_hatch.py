"""Tests of the ``hatch`` cabin task (constrained hatch actuation) and its scripted expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim.experts.hatch import APPROACH, SWING, TURN, HatchExpert
from hardware.sim.tasks.hatch import BOLT_ENGAGE_RAD, OPEN_RAD, UNLOCK_RAD, HatchEnv
from tests.sim.rollout import IDLE, rollout


@pytest.fixture(scope="module")
def env() -> HatchEnv:
    return HatchEnv()


def test_expert_follows_the_hinge_arc(env: HatchEnv) -> None:
    """While swinging, the grip point stays on the handle (the hand moves on the arc),
    the latch stays unlocked, and the hatch only opens once unlocked."""
    expert = HatchExpert(env)
    obs, _ = env.reset(seed=1030)
    expert.reset()
    for _ in range(env.max_steps):
        action = expert.act(obs)
        if env.locked:
            assert env.hatch_angle < np.deg2rad(3.0)
        if expert.phase == SWING:
            assert env.grasped == "latch"
            assert env.latch_angle >= UNLOCK_RAD
            gap = np.linalg.norm(env.grip_pos - env.site_pos("latch_handle"))
            assert gap < 0.02, f"grip point {gap:.3f} m off the handle while swinging"
        obs, _, terminated, _, _ = env.step(action)
        if terminated:
            break
    assert terminated and env.hatch_angle > OPEN_RAD


def test_do_nothing_does_not_succeed(env: HatchEnv) -> None:
    for seed in (1100, 1101, 1102):
        ok, _ = rollout(env, seed, lambda _obs: IDLE)
        assert not ok, f"an idle policy opened the hatch on seed {seed}"
        assert env.locked and env.hatch_angle < BOLT_ENGAGE_RAD


def test_locked_hatch_resists_a_pull(env: HatchEnv) -> None:
    """Grasp the latch without turning it and pull straight out: the bolt holds."""
    expert = HatchExpert(env)
    obs, _ = env.reset(seed=1200)
    expert.reset()
    while expert.phase < TURN:
        obs, *_ = env.step(expert.act(obs))
    out = -env.data.body("latch").xmat.reshape(3, 3)[:, 0]
    pull = np.concatenate([out, np.zeros(3), [1.0]])
    for _ in range(30):
        _, _, terminated, _, _ = env.step(pull)
        assert not terminated
        assert env.locked and env.hatch_angle < np.deg2rad(3.0)


def _set_angles(env: HatchEnv, latch_rad: float, hatch_rad: float) -> None:
    env.reset(seed=7)
    env.data.qpos[env.model.joint("latch_hinge").qposadr[0]] = latch_rad
    env.data.qpos[env.model.joint("hatch_hinge").qposadr[0]] = hatch_rad
    mujoco.mj_forward(env.model, env.data)


@pytest.mark.parametrize(("latch_deg", "hatch_deg", "expected"), [
    (60.5, 60.5, True),
    (60.5, 59.5, False),
    (59.5, 60.5, False),
    (59.5, 59.5, False),
    (85.0, 100.0, True),
])
def test_success_criterion_threshold(env: HatchEnv, latch_deg: float, hatch_deg: float,
                                     expected: bool) -> None:
    _set_angles(env, np.deg2rad(latch_deg), np.deg2rad(hatch_deg))
    reward, success = env._evaluate()
    assert success is expected
    assert (reward >= 1.0) is expected


def test_observation_layout(env: HatchEnv) -> None:
    layout = {f.name: f for f in env.obs_layout()}
    assert env.observation_space.shape == (38,)
    assert sum(f.size for f in layout.values()) == 38
    _set_angles(env, np.deg2rad(40.0), np.deg2rad(30.0))
    obs = env._obs()
    assert obs[layout["latch_angle"].slice] == pytest.approx([np.deg2rad(40.0)])
    assert obs[layout["hatch_angle"].slice] == pytest.approx([np.deg2rad(30.0)])
    np.testing.assert_allclose(obs[layout["handle_pos"].slice], env.site_pos("latch_handle"))
    np.testing.assert_allclose(obs[layout["hinge_pos"].slice],
                               env.model.body_pos[env.model.body("hatch_frame").id])
    axis = obs[layout["hinge_axis"].slice]
    assert np.linalg.norm(axis) == pytest.approx(1.0)
    assert axis[2] > np.cos(np.deg2rad(6.0))  # frame tilt is at most 3 deg per axis
    np.testing.assert_allclose(obs[layout["gripper_pos"].slice], env.gripper_pos)
    assert obs[layout["locked"].slice] == pytest.approx([1.0])
    r_g, r_latch = env.gripper_mat, env.body_mat("latch")
    rel = env.site_pos("latch_handle") - env.grip_pos
    np.testing.assert_allclose(obs[layout["handle_rel"].slice], rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["handle_rel_g"].slice], r_g.T @ rel, atol=1e-12)
    np.testing.assert_allclose(obs[layout["door_normal_g"].slice], -r_g.T @ r_latch[:, 0],
                               atol=1e-12)
    np.testing.assert_allclose(obs[layout["latch_arm_g"].slice], -r_g.T @ r_latch[:, 2],
                               atol=1e-12)
    # the hinge point moves with the randomized frame
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    assert not np.allclose(a[layout["hinge_pos"].slice], b[layout["hinge_pos"].slice])


def test_expert_regrasps_after_a_dropped_latch(env: HatchEnv) -> None:
    """Open the gripper mid-turn: the latch springs back, the expert starts over and
    still succeeds."""
    expert = HatchExpert(env)
    obs, _ = env.reset(seed=1400)
    expert.reset()
    while expert.phase < TURN:
        obs, *_ = env.step(expert.act(obs))
    for _ in range(3):
        obs, *_ = env.step(expert.act(obs))
    for _ in range(5):
        obs, *_ = env.step(IDLE)
    assert env.grasped is None
    terminated = False
    for _ in range(env.max_steps - env.steps):
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert expert.phase != APPROACH
    assert terminated
