"""Scripted expert of ``cap``: catch the drifting lid by its handle, line it up with the
tumbling container's axis, approach along that axis and seat it on the rim.

It reads the full state of its ``CapEnv`` every step and re-plans from it (closed loop);
each target is corrected by a feedforward of the target point's velocity over one control
period (50 ms), so drift and tumble are tracked rather than chased.

Phases:

0. ``APPROACH``: gripper open; the grip point servoes to a pre-grasp point 6 cm out along
   the lid axis from the handle, while the gripper's z axis turns onto the lid axis (the
   gripper points down onto the lid's top face). Moves on when within 1 cm and 0.15 rad.
1. ``DESCEND``: the grip point servoes onto the handle (following the lid's drift and
   tumble); the gripper closes once within 1.2 cm, and the grasp weld engages.
2. ``ALIGN``: holding the lid, the lid's *seat point* (underside centre) servoes to a
   stand-off point 7 cm out along the container axis from the rim centre, and the lid
   axis turns onto the container axis (the rotation is about the palm, so its effect on
   the seat point is compensated). If the lid is not yet on the rim side of the container
   (axial offset < 3 cm), it first goes to a via point beside the container so it does not
   sweep through it. Moves on when within 3 mm of the stand-off and 2 deg of the axis.
3. ``INSERT``: the seat point advances along the (moving) axis by at most 1 cm per step,
   3 mm per step in the last 2 cm, to 1 mm past the rim plane (contact stops it at the
   rim), correcting radial error and tilt on the way; if they exceed 4 mm or 4 deg it
   backs off to 3 cm. The episode ends (success) when the lid is seated.

If the grasp is lost (it should not be), the expert returns to ``APPROACH``.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.experts.base import Expert, clip_norm, servo
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.cap import CONTAINER_RADIUS_M, LID_RADIUS_M, CapEnv

DT_S = 1.0 / CONTROL_HZ
APPROACH, DESCEND, ALIGN, INSERT = range(4)

PREGRASP_M = 0.06
STANDOFF_M = 0.07
VIA_SIDE_M = CONTAINER_RADIUS_M + LID_RADIUS_M + 0.05


class CapExpert(Expert):
    """Waypoint + feedback expert for ``CapEnv`` (phases in the module docstring)."""

    env: CapEnv

    def _point_velocity(self, body: str, point: np.ndarray) -> np.ndarray:
        """World velocity (m/s) of a point rigidly attached to free body ``body``."""
        v, w = self.env.body_velocity(body)
        return v + np.cross(w, point - self.env.body_pos(body))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """7-D action in [-1, 1] for the current state (``obs`` itself is not used)."""
        env = self.env
        if self.phase >= ALIGN and env.grasped != "lid":
            self.phase = APPROACH
        if self.phase <= DESCEND:
            return self._catch()
        return self._place()

    # ---- phases 0-1: catch the lid by its handle ----------------------------------------
    def _catch(self) -> np.ndarray:
        env = self.env
        handle = env.site_pos("lid_handle")
        axis = env.lid_axis()
        ff = self._point_velocity("lid", handle) * DT_S
        g_z = rot.quat_to_mat(env.gripper_quat)[:, 2]
        turn = rot.rotation_between(g_z, axis)
        quat_target = rot.quat_mul(rot.axisangle_to_quat(turn), env.gripper_quat)
        quat_target = rot.quat_mul(rot.axisangle_to_quat(
            env.body_velocity("lid")[1] * DT_S), quat_target)
        if self.phase == APPROACH:
            target = handle + PREGRASP_M * axis
            if (np.linalg.norm(env.grip_pos - target) < 0.01
                    and np.linalg.norm(turn) < 0.15):
                self.phase = DESCEND
            return servo(env, target, quat_target, grip=-1.0, feedforward_m=ff)
        dist = np.linalg.norm(env.grip_pos - handle)
        grip = 1.0 if dist < 0.012 else -1.0
        if dist < 0.012 and env.grasped == "lid":
            self.phase = ALIGN
        return servo(env, handle, quat_target, grip=grip, max_step_m=0.02, feedforward_m=ff)

    # ---- phases 2-3: carry the lid onto the rim -----------------------------------------
    def _place(self) -> np.ndarray:
        env = self.env
        rim = env.site_pos("rim")
        a = env.container_axis()
        seat = env.site_pos("lid_seat")
        axial, radial, tilt = env.seat_error()
        _, w_c = env.body_velocity("container")
        ff = self._point_velocity("container", rim) * DT_S

        if self.phase == ALIGN:
            if axial < 0.03:
                d = seat - rim
                side = d - (d @ a) * a
                n = np.linalg.norm(side)
                if n < 1e-6:  # on the axis, behind the container: any side will do
                    side = np.cross(a, [1.0, 0.0, 0.0])
                    if np.linalg.norm(side) < 0.1:
                        side = np.cross(a, [0.0, 1.0, 0.0])
                    n = np.linalg.norm(side)
                side = side / n
                target = rim + VIA_SIDE_M * side + STANDOFF_M * a
            else:
                target = rim + STANDOFF_M * a
                if np.linalg.norm(seat - target) < 0.003 and tilt < np.deg2rad(2.0):
                    self.phase = INSERT
            max_step = 0.03
        else:
            if radial > 0.004 or tilt > np.deg2rad(4.0):
                goal = 0.03
            else:
                goal = max(axial - (0.01 if axial > 0.02 else 0.003), -0.001)
            target = rim + goal * a
            max_step = 0.015

        # Rotation: turn the lid axis onto the container axis, plus the container's turn
        # over the next step; the palm-centred rotation's effect on the seat is cancelled.
        rotvec = clip_norm(rot.rotation_between(env.lid_axis(), a) + w_c * DT_S, 0.2)
        r = rot.quat_to_mat(rot.axisangle_to_quat(rotvec))
        arm = seat - env.gripper_pos
        move = clip_norm(target - seat + ff, max_step) - (r @ arm - arm)
        quat_target = rot.quat_mul(rot.axisangle_to_quat(rotvec), env.gripper_quat)
        return servo(env, env.grip_pos + move, quat_target, grip=1.0,
                     max_step_m=max_step + 0.02, max_rot_rad=0.2)
