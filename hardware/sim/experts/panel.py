"""Scripted expert of ``panel``: press the button with the side of the palm, then catch the
drifting plug by its handle, line it up with the socket axis and push it in.

It reads the full state of its ``PanelEnv`` every step (panel and socket frames, button
travel, the ``armed`` latch, plug pose and velocity, the grasp) and re-plans from it
(closed loop). Moving targets are led by a feedforward of their velocity over one control
period (50 ms), so the plug's drift and tumble are tracked rather than chased.

Motions are commands to a *gripper-fixed point* (the palm's side face, the grip point, or
the tip of the held plug): the base rotates the gripper about its body origin, so the
displacement that rotation causes at that point is subtracted from the commanded
translation.

Phases (``self.phase``):

0. ``PRESS_APPROACH``: turn the gripper so that the +x side face of its palm faces the
   panel (gripper x = -n, gripper z = the panel's "up" made orthogonal) and bring the
   centre of that face 4 cm in front of the button cap. Fingers closed (they then lie
   inside the palm's outline) unless the plug handle is within 6 cm of the grip point,
   so that the press can never grasp the plug by accident. Next when within 1 cm and
   0.1 rad.
1. ``PRESS``: push that face point along -n to 16 mm past the cap's rest position (the
   button bottoms out at 12 mm; the compliant drive limits the force), correcting the
   lateral error. Next as soon as the socket reports ``armed``.
2. ``RETREAT``: back the face point out towards 5 cm in front of the cap; go on once it
   is 4 cm out.
3. ``APPROACH``: gripper open; the grip point servoes to a pre-grasp point 6 cm out along
   the plug axis from the handle while the gripper z axis turns onto the plug axis. If
   the grip point is on the pin side of the handle (less than 3 cm out along the axis),
   the target is first moved 13 cm sideways so the palm does not sweep through the plug;
   and whenever the palm centre comes within 9 cm of the plug's axis segment, the target
   is pushed away from the plug by 3x the intrusion (a turning palm would otherwise bat
   the plug away faster than the gripper can chase it). Next when within 1 cm and
   0.15 rad.
4. ``DESCEND``: the grip point servoes onto the handle; the gripper closes within 1.2 cm
   and the grasp weld engages (base class). Back to 3 if the handle gets 8 cm away.
5. ``ALIGN``: holding the plug, its tip servoes to a stand-off 6 cm out along the socket
   axis from the mouth (15 cm while the plug axis is more than 25 deg off the socket
   axis, so that a plug still turning round does not sweep into the panel) and the plug
   axis turns onto the socket axis. Next within 4 mm and 2 deg.
6. ``INSERT``: the tip advances along -n by at most 1 cm per step, 4 mm per step in the
   last 1.5 cm before the mouth, to 34 mm past the mouth (the floor is at 30 mm; contact
   stops it there), correcting radial error and tilt on the way; while still outside the
   mouth it backs off to the stand-off if they exceed 2.5 mm or 3 deg. The episode ends
   (success) once the tip is 25 mm in.

Losing the grasp during 5-6 sends it back to ``APPROACH``.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import MAX_DPOS_M, MAX_DROT_RAD
from hardware.sim.experts.base import Expert, clip_norm, servo
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.panel import ARM_TRAVEL_M, BUTTON_TRAVEL_M, PanelEnv

DT_S = 1.0 / CONTROL_HZ
PRESS_APPROACH, PRESS, RETREAT, APPROACH, DESCEND, ALIGN, INSERT = range(7)

PALM_SIDE_M = 0.035  # palm half length along the gripper x axis (side face offset)
PRESS_STANDOFF_M = 0.04
PRESS_PAST_M = BUTTON_TRAVEL_M + 0.004
RETREAT_M = 0.05
PREGRASP_M = 0.06
SIDESTEP_M = 0.13
KEEPOUT_M = 0.09
CLOSE_TOL_M = 0.012
STANDOFF_M = 0.06
FAR_STANDOFF_M = 0.15
FAR_TILT_RAD = np.deg2rad(25.0)
INSERT_GOAL_M = 0.034
assert PRESS_PAST_M > ARM_TRAVEL_M


class PanelExpert(Expert):
    """Waypoint + feedback expert for ``PanelEnv`` (phases in the module docstring)."""

    env: PanelEnv

    def act(self, obs: np.ndarray) -> np.ndarray:
        """7-D action in [-1, 1] for the current state (``obs`` itself is not used)."""
        env = self.env
        if self.phase < APPROACH and env.armed and self.phase != RETREAT:
            self.phase = RETREAT
        if self.phase >= ALIGN and env.grasped != "plug":
            self.phase = APPROACH
        if self.phase <= RETREAT:
            return self._press()
        if self.phase <= DESCEND:
            return self._catch()
        return self._insert()

    # ---- helpers ----------------------------------------------------------------------
    def _point_velocity(self, point: np.ndarray) -> np.ndarray:
        """World velocity (m/s) of a point rigidly attached to the plug."""
        v, w = self.env.plug_velocity()
        return v + np.cross(w, point - self.env.body_pos("plug"))

    def _move_point(self, point: np.ndarray, target: np.ndarray, rotvec: np.ndarray,
                    max_step_m: float, grip: float) -> np.ndarray:
        """Action moving gripper-fixed ``point`` (m, world) towards ``target`` by at most
        ``max_step_m`` while turning the gripper by ``rotvec`` (rad, world, about the
        gripper body origin; clipped to 0.25 rad)."""
        env = self.env
        rotvec = clip_norm(np.asarray(rotvec, float), 0.25)
        arm = point - env.gripper_pos
        swept = rot.quat_to_mat(rot.axisangle_to_quat(rotvec)) @ arm - arm
        move = clip_norm(target - point, max_step_m) - swept
        action = np.zeros(7)
        action[:3] = move / MAX_DPOS_M
        action[3:6] = rotvec / MAX_DROT_RAD
        action[6] = grip
        return np.clip(action, -1.0, 1.0)

    def _keepout(self, handle: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Offset (m) pushing the approach target away from the plug when the palm centre
        comes within ``KEEPOUT_M`` of the plug's axis segment (tip to knob top), so that a
        turning gripper does not bat the plug away."""
        env = self.env
        palm = env.gripper_pos
        tip = env.site_pos("plug_tip")
        top = handle + 0.01 * p
        seg = top - tip
        u = float(np.clip((palm - tip) @ seg / (seg @ seg), 0.0, 1.0))
        away = palm - (tip + u * seg)
        dist = float(np.linalg.norm(away))
        if dist >= KEEPOUT_M or dist < 1e-9:
            return np.zeros(3)
        return 3.0 * (KEEPOUT_M - dist) * away / dist

    # ---- phases 0-2: press the button with the side of the palm -----------------------
    def _press(self) -> np.ndarray:
        env = self.env
        _, n = env.socket_frame()
        up = env.data.xmat[env.model.body("panel").id].reshape(3, 3)[:, 0]
        x_des = -n
        z_des = up - (up @ x_des) * x_des
        z_des /= np.linalg.norm(z_des)
        q_des = rot.mat_to_quat(np.column_stack([x_des, np.cross(z_des, x_des), z_des]))
        rotvec = rot.quat_error(q_des, env.gripper_quat)
        x_g = rot.quat_to_mat(env.gripper_quat)[:, 0]
        face = env.gripper_pos + PALM_SIDE_M * x_g
        button = env.button_rest_pos()
        handle_near = np.linalg.norm(env.site_pos("plug_handle") - env.grip_pos) < 0.06
        grip = -1.0 if handle_near else 1.0
        if self.phase == PRESS_APPROACH:
            target = button + PRESS_STANDOFF_M * n
            if np.linalg.norm(face - target) < 0.01 and np.linalg.norm(rotvec) < 0.1:
                self.phase = PRESS
            return self._move_point(face, target, rotvec, 0.03, grip)
        if self.phase == PRESS:
            return self._move_point(face, button - PRESS_PAST_M * n, rotvec, 0.015, grip)
        target = button + RETREAT_M * n
        if (face - button) @ n > RETREAT_M - 0.01:
            self.phase = APPROACH
        return self._move_point(face, target, rotvec, 0.03, grip)

    # ---- phases 3-4: catch the plug by its handle -------------------------------------
    def _catch(self) -> np.ndarray:
        env = self.env
        handle = env.site_pos("plug_handle")
        p = env.plug_axis()
        ff = self._point_velocity(handle) * DT_S
        g_z = rot.quat_to_mat(env.gripper_quat)[:, 2]
        turn = rot.rotation_between(g_z, p)
        _, w = env.plug_velocity()
        quat_target = rot.quat_mul(rot.axisangle_to_quat(turn + w * DT_S), env.gripper_quat)
        rel = env.grip_pos - handle
        if self.phase == APPROACH:
            target = handle + PREGRASP_M * p
            along = float(rel @ p)
            if along < 0.03:
                side = rel - along * p
                ns = float(np.linalg.norm(side))
                if ns < 1e-6:  # right on the axis, behind the pin: any side will do
                    side = np.cross(p, [1.0, 0.0, 0.0] if abs(p[0]) < 0.9 else [0.0, 1.0, 0.0])
                    ns = float(np.linalg.norm(side))
                target = target + SIDESTEP_M * side / ns
            elif (np.linalg.norm(env.grip_pos - target) < 0.01
                  and np.linalg.norm(turn) < 0.15):
                self.phase = DESCEND
            target = target + self._keepout(handle, p)
            return servo(env, target, quat_target, grip=-1.0, feedforward_m=ff)
        dist = float(np.linalg.norm(rel))
        if dist > 0.08:
            self.phase = APPROACH
        grip = 1.0 if dist < CLOSE_TOL_M else -1.0
        if dist < CLOSE_TOL_M and env.grasped == "plug":
            self.phase = ALIGN
        return servo(env, handle, quat_target, grip=grip, max_step_m=0.02, feedforward_m=ff)

    # ---- phases 5-6: carry the plug into the socket -----------------------------------
    def _insert(self) -> np.ndarray:
        env = self.env
        s, n = env.socket_frame()
        tip = env.site_pos("plug_tip")
        depth, radial, tilt = env.insertion_error()
        rotvec = rot.rotation_between(env.plug_axis(), n)
        out = -depth  # tip distance in front of the mouth plane, m
        if self.phase == ALIGN:
            stand = STANDOFF_M if tilt < FAR_TILT_RAD else FAR_STANDOFF_M
            target = s + stand * n
            if np.linalg.norm(tip - target) < 0.004 and tilt < np.deg2rad(2.0):
                self.phase = INSERT
            return self._move_point(tip, target, rotvec, 0.03, 1.0)
        if out > 0.0 and (radial > 0.0025 or tilt > np.deg2rad(3.0)):
            goal_out = 0.03
        else:
            step = 0.01 if out > 0.015 else 0.004
            goal_out = max(out - step, -INSERT_GOAL_M)
        return self._move_point(tip, s + goal_out * n, rotvec, 0.015, 1.0)
