"""Scripted expert of ``cap``: catch the drifting lid by its handle, line it up with the
tumbling container's axis, approach along that axis and seat it on the rim.

It reads the full state of its ``CapEnv`` every step and derives its phase from it
(``phase_from_state``); nothing is remembered between steps. Each target is corrected by a
feedforward of the target point's velocity over one control period (50 ms), so drift and
tumble are tracked rather than chased.

Phases:

0. ``APPROACH`` (lid not held, grip point outside the descent corridor): gripper open;
   the grip point servoes to a pre-grasp point 6 cm out along the lid axis from the
   handle, while the gripper's z axis turns onto the lid axis (the gripper points down
   onto the lid's top face).
1. ``DESCEND`` (not held, grip point within 1.2 cm of the lid axis line, at most 7 cm out
   from the handle, gripper z within 0.2 rad of the lid axis): the grip point servoes
   onto the handle (following the lid's drift and tumble); the gripper closes once within
   1.2 cm, and the grasp weld engages.
2. ``ALIGN`` (held, lid not lined up with the container axis): the lid's *seat point*
   (underside centre) servoes to a stand-off point 7 cm out along the container axis
   from the rim centre, and the lid axis turns onto the container axis (the rotation is
   about the palm, so its effect on the seat point is compensated). If the lid is not
   yet on the rim side of the container (axial offset < 5 mm), it first goes to a via
   point beside the container so it does not sweep through it.
3. ``INSERT`` (held, between the rim and 8 cm out, the seat point within ``LINED_UP_M``
   of the container axis and the lid axis within ``LINED_UP_RAD`` of it at the rim, both
   tolerances widening with the distance out, ``in_funnel``): the seat point advances
   along the (moving) axis by at most 1 cm per step, 3 mm per step in the last 2 cm, to
   1 mm past the rim plane (contact stops it at the rim), correcting radial error and
   tilt on the way. The episode ends (success) when the lid is seated.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.experts.base import Expert, clip_norm, in_corridor, in_funnel, servo
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.cap import CONTAINER_RADIUS_M, LID_RADIUS_M, CapEnv

DT_S = 1.0 / CONTROL_HZ
APPROACH, DESCEND, ALIGN, INSERT = range(4)

PREGRASP_M = 0.06
CORRIDOR_M = 0.012
CORRIDOR_ROT_RAD = 0.2
CLOSE_TOL_M = 0.012
STANDOFF_M = 0.07
LINED_UP_M = 0.004
LINED_UP_RAD = np.deg2rad(4.0)
VIA_SIDE_M = CONTAINER_RADIUS_M + LID_RADIUS_M + 0.05
VIA_BELOW_M = 0.005  # seat less than this above the rim plane: go round the container


class CapExpert(Expert):
    """Waypoint + feedback expert for ``CapEnv`` (phases in the module docstring)."""

    env: CapEnv
    PHASES = ("approach", "descend", "align", "insert")

    def _point_velocity(self, body: str, point: np.ndarray) -> np.ndarray:
        """World velocity (m/s) of a point rigidly attached to free body ``body``."""
        v, w = self.env.body_velocity(body)
        return v + np.cross(w, point - self.env.body_pos(body))

    def phase_from_state(self) -> int:
        env = self.env
        if env.grasped != "lid":
            inside = in_corridor(env, env.site_pos("lid_handle"), env.lid_axis(),
                                 PREGRASP_M + 0.01, CORRIDOR_M, self._catch_quat(),
                                 CORRIDOR_ROT_RAD)
            return DESCEND if inside else APPROACH
        axial, radial, tilt = env.seat_error()
        lined_up = in_funnel(radial, tilt, axial, LINED_UP_M, LINED_UP_RAD)
        return INSERT if lined_up and -0.002 < axial < STANDOFF_M + 0.01 else ALIGN

    def act_in(self, phase: int) -> np.ndarray:
        return self._catch(phase) if phase <= DESCEND else self._place(phase)

    # ---- phases 0-1: catch the lid by its handle ----------------------------------------
    def _catch_quat(self) -> np.ndarray:
        """Gripper attitude target: z onto the lid axis, led by the lid's turn over one
        control period."""
        env = self.env
        g_z = rot.quat_to_mat(env.gripper_quat)[:, 2]
        turn = rot.rotation_between(g_z, env.lid_axis())
        quat_target = rot.quat_mul(rot.axisangle_to_quat(turn), env.gripper_quat)
        return rot.quat_mul(rot.axisangle_to_quat(env.body_velocity("lid")[1] * DT_S),
                            quat_target)

    def _catch(self, phase: int) -> np.ndarray:
        env = self.env
        handle = env.site_pos("lid_handle")
        ff = self._point_velocity("lid", handle) * DT_S
        quat_target = self._catch_quat()
        if phase == APPROACH:
            return servo(env, handle + PREGRASP_M * env.lid_axis(), quat_target, grip=-1.0,
                         feedforward_m=ff)
        near = np.linalg.norm(env.grip_pos - handle) < CLOSE_TOL_M
        return servo(env, handle, quat_target, grip=self.closing(near), max_step_m=0.02,
                     feedforward_m=ff)

    # ---- phases 2-3: carry the lid onto the rim -----------------------------------------
    def _place(self, phase: int) -> np.ndarray:
        env = self.env
        rim = env.site_pos("rim")
        a = env.container_axis()
        seat = env.site_pos("lid_seat")
        axial, radial, tilt = env.seat_error()
        _, w_c = env.body_velocity("container")
        ff = self._point_velocity("container", rim) * DT_S

        if phase == ALIGN:
            if axial < VIA_BELOW_M:
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
            max_step = 0.03
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
