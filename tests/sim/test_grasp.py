"""The grasp model (tolerance, fingers, canonical pose) and whole-state snapshots."""

from __future__ import annotations

from dataclasses import replace

import mujoco
import numpy as np
import pytest

from hardware.sim import grasp as grasping
from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.registry import TASKS, make_env, make_expert
from hardware.sim.scene import FINGER_OPEN_M, GRIP_OFFSET_M
from hardware.sim.tasks.cap import CapEnv
from hardware.sim.tasks.drawer import DrawerEnv
from hardware.sim.tasks.stow import StowEnv

CLOSE = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


def _pose_gripper(env: CabinEnv, body: str, offset: tuple[float, ...] = (0.0, 0.0, 0.0),
                  turn: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0),
                  fingers: float = FINGER_OPEN_M) -> None:
    """Hold ``body`` still and put the gripper at its canonical, untilted grasp pose, then
    shift the grip point by ``offset`` (m, world) and turn the gripper by the rotation
    vector ``turn`` (rad, world, about the grip point)."""
    g = replace(next(g for g in env.GRASPS if g.body == body), max_tilt_rad=0.0)
    env.set_free_body(body, env.body_pos(body), env.body_quat(body), np.zeros(3), np.zeros(3))
    mujoco.mj_forward(env.model, env.data)
    _, mat = grasping.canonical_gripper(g, env.gripper_mat, env.body_mat(body),
                                        env.site_pos(g.site), GRIP_OFFSET_M)
    mat = rot.quat_to_mat(rot.axisangle_to_quat(np.asarray(turn, float))) @ mat
    grip = env.site_pos(g.site) + np.asarray(offset, float)
    env.set_free_body("gripper", grip + GRIP_OFFSET_M * mat[:, 2], rot.mat_to_quat(mat),
                      np.zeros(3), np.zeros(3))
    adr = [env.model.jnt_qposadr[env.model.joint(n).id] for n in ("finger_l", "finger_r")]
    env.data.qpos[adr] = fingers
    mujoco.mj_forward(env.model, env.data)
    env.data.mocap_pos[0] = env.gripper_pos
    env.data.mocap_quat[0] = env.gripper_quat


@pytest.fixture()
def cap() -> CapEnv:
    env = CapEnv()
    env.reset(seed=3)
    return env


@pytest.mark.parametrize(("offset_m", "grasped"), [(grasping.POS_TOL_M - 0.005, True),
                                                   (grasping.POS_TOL_M + 0.005, False)])
def test_grasp_needs_the_grip_point_within_tolerance(cap: CapEnv, offset_m: float,
                                                     grasped: bool) -> None:
    _pose_gripper(cap, "lid", offset=(offset_m, 0.0, 0.0))
    cap.step(CLOSE)
    assert (cap.grasped == "lid") is grasped


@pytest.mark.parametrize(("tilt_deg", "grasped"), [(12.0, True),
                                                   (np.rad2deg(grasping.ANGLE_TOL_RAD) + 8, False)])
def test_grasp_needs_the_orientation_within_tolerance(cap: CapEnv, tilt_deg: float,
                                                      grasped: bool) -> None:
    _pose_gripper(cap, "lid", turn=np.deg2rad(tilt_deg) * cap.gripper_mat[:, 0])
    cap.step(CLOSE)
    assert (cap.grasped == "lid") is grasped


def test_closed_fingers_cannot_grasp(cap: CapEnv) -> None:
    _pose_gripper(cap, "lid", fingers=0.0)
    for _ in range(3):
        cap.step(CLOSE)
    assert cap.grasped is None


def test_an_engaged_grasp_settles_at_the_canonical_pose(cap: CapEnv) -> None:
    """Closed 8 mm off and tilted 12 deg, the lid ends up on the grip point, its axis along
    the gripper's z axis."""
    _pose_gripper(cap, "lid", offset=(0.0, 0.008, 0.0),
                  turn=np.deg2rad(12.0) * cap.gripper_mat[:, 0])
    for _ in range(6):
        cap.step(CLOSE)
    assert cap.grasped == "lid"
    assert np.linalg.norm(cap.site_pos("lid_handle") - cap.grip_pos) < 0.002
    tilt = np.arccos(np.clip(cap.lid_axis() @ cap.gripper_mat[:, 2], -1.0, 1.0))
    assert np.rad2deg(tilt) < 1.0


def test_a_bar_handle_needs_the_fingers_across_it() -> None:
    """Stow's payload bar: the gripper's y axis must lie along the bar (fingers across it);
    turned past the angle tolerance about the approach axis, the grasp is refused."""
    env = StowEnv()
    for turn_deg, grasped in ((10.0, True), (np.rad2deg(grasping.ANGLE_TOL_RAD) + 8, False)):
        env.reset(seed=5)
        _pose_gripper(env, "payload", turn=np.deg2rad(turn_deg) * env.gripper_mat[:, 2])
        env.step(CLOSE)
        assert (env.grasped == "payload") is grasped, turn_deg


def test_the_item_loop_takes_tilted_grasps_about_the_loop_only() -> None:
    """Drawer's item: tilting the approach 45 deg about the carry loop is a valid grasp
    (and kept as found); 45 deg about the perpendicular axis is not."""
    env = DrawerEnv()
    for axis, grasped in ((1, True), (0, False)):
        env.reset(seed=5)
        _pose_gripper(env, "item", turn=np.deg2rad(45.0) * env.body_mat("item")[:, axis])
        env.step(CLOSE)
        assert (env.grasped == "item") is grasped, axis
        if grasped:
            for _ in range(5):
                env.step(CLOSE)
            z_item, gz = env.body_mat("item")[:, 2], env.gripper_mat[:, 2]
            assert np.rad2deg(np.arccos(np.clip(z_item @ gz, -1, 1))) == pytest.approx(45, abs=3)


@pytest.mark.parametrize("task", list(TASKS))
def test_a_state_snapshot_continues_identically_in_another_env(task: str) -> None:
    """Snapshot mid-episode (grasp, latches, randomized model parameters included),
    restore into a fresh env reset to another seed: the same actions give the same
    observations (to 1e-9: the restored model recomputes its derived constants)."""
    env = make_env(task).unwrapped
    expert = make_expert(task, env)
    obs, _ = env.reset(seed=21)
    for _ in range(30):
        obs, *_ = env.step(expert.act(obs))
    state = env.get_state()
    actions = [expert.act(obs)]
    ref = []
    for _ in range(15):
        ref.append(env.step(actions[-1])[0])
        actions.append(expert.act(ref[-1]))
    other = make_env(task).unwrapped
    other.reset(seed=99)
    other.set_state(state)
    got = [other.step(a)[0] for a in actions[:-1]]
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=0, atol=1e-9)
    assert other.grasped == env.grasped and other.steps == env.steps
