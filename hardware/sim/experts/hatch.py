"""Scripted expert of the ``hatch`` task: grasp the latch, turn it, swing the hatch open.

It reads the full state of its ``HatchEnv`` every step (joint angles, joint axes and
anchors, the handle site, the grasp) and derives its phase from it (``phase_from_state``);
nothing is remembered between steps.

Phases:

0. APPROACH (not holding the latch, grip point outside the insertion corridor): servo the
   grip point to a pre-grasp point ``STANDOFF_M`` in front of the handle (along the
   door's outward normal) with the gripper pointing into the door and its x axis along
   the lever arm, gripper open. The target is recomputed from the current handle pose,
   so a latch that springs back, or a hatch that drifts, is tracked.
1. INSERT (not holding, grip point in the corridor: within ``CORRIDOR_M`` of the
   normal line through the handle, at most ``STANDOFF_M`` + 1.2 cm out, attitude within
   ``CORRIDOR_ROT_RAD``): move straight in onto the handle site; close once the grip point
   is within ``CLOSE_TOL_M`` of it (the grasp weld engages, base class).
2. TURN (holding, the hatch still locked or the latch below ``LATCH_SWING_RAD``): command
   a rigid motion of the hand equal to a rotation of the lever about the latch's current
   world axis (through its anchor) by ``clip(LATCH_GAIN * (LATCH_GOAL - angle),
   +-LATCH_RATE)``, i.e. the hand moves on the latch's arc and rotates with it, rather
   than pulling straight.
3. SWING (holding, unlocked, latch past ``LATCH_SWING_RAD``): the same, composed with a
   rotation about the hatch hinge axis (through its anchor) by
   ``clip(HATCH_GAIN * (HATCH_GOAL - angle), +-HATCH_RATE)``: the hand follows the hinge
   arc, turning with the door, while still holding the latch turned.

The commanded motion is a rigid transform ``T`` of the held lever; the action moves the
gripper *body* by ``T`` (position delta of the body origin, not of the grip point, since
the base rotates the gripper about its body origin) and rotates it by ``T``'s rotation.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import MAX_DPOS_M, MAX_DROT_RAD
from hardware.sim.experts.base import Expert, in_corridor, servo
from hardware.sim.tasks.hatch import UNLOCK_RAD, HatchEnv

APPROACH, INSERT, TURN, SWING = range(4)

STANDOFF_M = 0.06
PRE_TOL_M = 0.012
CORRIDOR_M = 0.012
CORRIDOR_ROT_RAD = 0.15
CLOSE_TOL_M = 0.008
LATCH_GOAL_RAD = np.deg2rad(85.0)
LATCH_SWING_RAD = UNLOCK_RAD + np.deg2rad(8.0)
LATCH_GAIN, LATCH_RATE = 1.0, 0.2  # -, rad per step
HATCH_GOAL_RAD = np.deg2rad(80.0)
HATCH_GAIN, HATCH_RATE = 1.0, 0.08  # -, rad per step

# gripper axes expressed in the latch frame: gripper x along the arm (latch -z),
# gripper z out of the door (latch -x), so the gripper points into the door.
_GRIP_IN_LATCH = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])


def _rot_about(axis: np.ndarray, point: np.ndarray, angle: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rigid transform (rotation matrix, translation) rotating by ``angle`` rad about the
    world line through ``point`` (m) along unit ``axis``."""
    r = rot.quat_to_mat(rot.axisangle_to_quat(axis * angle))
    return r, point - r @ point


class HatchExpert(Expert):
    """Waypoint + feedback expert for ``HatchEnv`` (phases in the module docstring)."""

    PHASES = ("approach", "insert", "turn", "swing")

    def __init__(self, env: HatchEnv) -> None:
        super().__init__(env)
        self.env: HatchEnv = env

    def _grasp_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(handle pos m, outward door normal, gripper quat)`` for grasping the handle."""
        env = self.env
        r_latch = env.data.body("latch").xmat.reshape(3, 3)
        normal_out = -r_latch[:, 0]
        quat = rot.mat_to_quat(r_latch @ _GRIP_IN_LATCH)
        return env.site_pos("latch_handle"), normal_out, quat

    def _move_held(self, d_latch: float, d_hatch: float) -> np.ndarray:
        """Action moving the held lever rigidly: turn it by ``d_latch`` rad about the latch
        axis, then the door by ``d_hatch`` rad about the hinge axis; grip stays closed."""
        env = self.env
        r1, t1 = _rot_about(*self._axis("latch_hinge"), d_latch)
        r2, t2 = _rot_about(*self._axis("hatch_hinge"), d_hatch)
        r, t = r2 @ r1, r2 @ t1 + t2
        body = env.gripper_pos
        dpos = (r @ body + t) - body
        drot = rot.quat_to_axisangle(rot.mat_to_quat(r))
        action = np.zeros(7)
        action[:3] = dpos / MAX_DPOS_M
        action[3:6] = drot / MAX_DROT_RAD
        action[6] = 1.0
        return np.clip(action, -1.0, 1.0)

    def _axis(self, joint: str) -> tuple[np.ndarray, np.ndarray]:
        point, axis = self.env.hinge_axis(joint)
        return axis, point

    def phase_from_state(self) -> int:
        env = self.env
        if env.grasped == "latch":
            return SWING if env.latch_angle >= LATCH_SWING_RAD and not env.locked else TURN
        handle, normal_out, quat = self._grasp_pose()
        inside = in_corridor(env, handle, normal_out, STANDOFF_M + PRE_TOL_M, CORRIDOR_M,
                             quat, CORRIDOR_ROT_RAD)
        return INSERT if inside else APPROACH

    def act_in(self, phase: int) -> np.ndarray:
        env = self.env
        handle, normal_out, quat = self._grasp_pose()
        if phase == APPROACH:
            return servo(env, handle + STANDOFF_M * normal_out, quat, grip=-1.0,
                         max_step_m=0.04, max_rot_rad=0.4)
        if phase == INSERT:
            near = np.linalg.norm(env.grip_pos - handle) < CLOSE_TOL_M
            return servo(env, handle, quat, grip=self.closing(near), max_step_m=0.02)
        d_latch = float(np.clip(LATCH_GAIN * (LATCH_GOAL_RAD - env.latch_angle),
                                -LATCH_RATE, LATCH_RATE))
        if phase == TURN:
            return self._move_held(d_latch, 0.0)
        d_hatch = float(np.clip(HATCH_GAIN * (HATCH_GOAL_RAD - env.hatch_angle),
                                -HATCH_RATE, HATCH_RATE))
        return self._move_held(d_latch, d_hatch)
