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

The phase is derived from the state every step (``phase_from_state``): armed or not,
what is held, the order fault, and where the palm, the grip point or the plug tip are
relative to their corridors; nothing is remembered between steps.

Phases:

0. ``PRESS_APPROACH`` (socket not armed, palm face outside the press corridor): turn the
   gripper so that the +x side face of its palm faces the panel (gripper x = -n, gripper
   z = the panel's "up" made orthogonal) and bring the centre of that face 4 cm in front
   of the button cap. The gripper stays open (or closed on the plug, if it holds it: the
   press works either way).
1. ``PRESS`` (not armed, face point within 1 cm of the button axis, at most 5 cm out,
   attitude within 0.1 rad): push that face point along -n to 16 mm past the cap's rest
   position (the button bottoms out at 12 mm; the compliant drive limits the force),
   correcting the lateral error, until the socket reports ``armed``.
2. ``RETREAT`` (armed, plug not held, face point less than 4 cm out in front of the
   button): back the face point out towards 5 cm in front of the cap.
3. ``APPROACH`` (armed, plug not held, grip point outside the descent corridor): gripper
   open; the grip point servoes to a pre-grasp point 6 cm out along the plug axis from
   the handle while the gripper z axis turns onto the plug axis. If the grip point is on
   the pin side of the handle (less than 3 cm out along the axis), the target is first
   moved 13 cm sideways so the palm does not sweep through the plug; and whenever the
   palm centre comes within 9 cm of the plug's axis segment, the target is pushed away
   from the plug by 3x the intrusion (a turning palm would otherwise bat the plug away
   faster than the gripper can chase it).
4. ``DESCEND`` (armed, not held, grip point within 1.2 cm of the plug axis line, at most
   7 cm out from the handle, gripper z within 0.2 rad of the plug axis): the grip point
   servoes onto the handle; the gripper closes within 1.2 cm and the grasp weld engages.
5. ``ALIGN`` (holding the plug, armed, not lined up with the socket; or holding it with
   an order fault): its tip servoes to a stand-off 6 cm out along the socket axis from
   the mouth (15 cm while the plug axis is more than 25 deg off the socket axis, so that
   a plug still turning round does not sweep into the panel) and the plug axis turns onto
   the socket axis. Pulling the tip out of the bore clears an order fault.
6. ``INSERT`` (held, armed, no order fault, and the tip either in the bore or in front
   of the mouth within ``LINED_UP_M`` of the axis and ``LINED_UP_RAD`` of its direction at
   the mouth, tolerances that widen with the distance out, ``in_funnel``;
   the socket's real clearance: the pin has 4 mm per side): the tip advances along -n by
   at most 1 cm per step, 4 mm per step in the last 1.5 cm before the mouth, to 28 mm
   past the mouth (2 mm short of the floor at 30 mm: pressed on the floor, friction
   would hold the tip where it landed), correcting radial error and tilt on the way.
   The episode ends (success) once the tip is 25 mm in.

Holding the plug before the socket is armed (no fault), the expert presses the button
with the plug in hand (phases 0-1).
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import MAX_DPOS_M, MAX_DROT_RAD
from hardware.sim.experts.base import Expert, clip_norm, in_corridor, in_funnel, servo
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.panel import ARM_TRAVEL_M, BORE_HALF_M, BUTTON_TRAVEL_M, PanelEnv

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
CORRIDOR_M = 0.012
CORRIDOR_ROT_RAD = 0.2
PRESS_CORRIDOR_M = 0.01
PRESS_ROT_RAD = 0.1
LINED_UP_M = 0.0035
LINED_UP_RAD = np.deg2rad(4.5)
STANDOFF_M = 0.06
FAR_STANDOFF_M = 0.15
FAR_TILT_RAD = np.deg2rad(25.0)
INSERT_GOAL_M = 0.028
assert PRESS_PAST_M > ARM_TRAVEL_M


class PanelExpert(Expert):
    """Waypoint + feedback expert for ``PanelEnv`` (phases in the module docstring)."""

    env: PanelEnv
    PHASES = ("press_approach", "press", "retreat", "approach", "descend", "align", "insert")

    def phase_from_state(self) -> int:
        env = self.env
        held = env.grasped == "plug"
        if held and env.order_fault:
            return ALIGN
        if not env.armed:
            face, q_des, button, n = self._press_frame()
            rel = face - button
            along = float(rel @ n)
            lateral = float(np.linalg.norm(rel - along * n))
            err = float(np.linalg.norm(rot.quat_error(q_des, env.gripper_quat)))
            in_press = (-PRESS_PAST_M <= along <= PRESS_STANDOFF_M + 0.01
                        and lateral <= PRESS_CORRIDOR_M and err <= PRESS_ROT_RAD)
            return PRESS if in_press else PRESS_APPROACH
        if held:
            depth, radial, tilt = env.insertion_error()
            in_bore = depth > 0.0 and radial < BORE_HALF_M
            lined_up = (in_funnel(radial, tilt, -depth, LINED_UP_M, LINED_UP_RAD)
                        and -depth < STANDOFF_M + 0.01)
            return INSERT if in_bore or lined_up else ALIGN
        face, _, button, n = self._press_frame()
        rel = face - button
        along = float(rel @ n)
        if along < RETREAT_M - 0.01 and np.linalg.norm(rel - along * n) < 0.04:
            return RETREAT
        handle, p = env.site_pos("plug_handle"), env.plug_axis()
        inside = in_corridor(env, handle, p, PREGRASP_M + 0.01, CORRIDOR_M,
                             self._catch_quat(), CORRIDOR_ROT_RAD)
        return DESCEND if inside else APPROACH

    def act_in(self, phase: int) -> np.ndarray:
        if phase <= RETREAT:
            return self._press(phase)
        if phase <= DESCEND:
            return self._catch(phase)
        return self._insert(phase)

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
    def _press_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(palm side-face centre m, pressing attitude wxyz, button cap rest centre m,
        panel normal n)``, world frame."""
        env = self.env
        _, n = env.socket_frame()
        up = env.data.xmat[env.model.body("panel").id].reshape(3, 3)[:, 0]
        x_des = -n
        z_des = up - (up @ x_des) * x_des
        z_des /= np.linalg.norm(z_des)
        q_des = rot.mat_to_quat(np.column_stack([x_des, np.cross(z_des, x_des), z_des]))
        face = env.gripper_pos + PALM_SIDE_M * env.gripper_mat[:, 0]
        return face, q_des, env.button_rest_pos(), n

    def _press(self, phase: int) -> np.ndarray:
        env = self.env
        face, q_des, button, n = self._press_frame()
        rotvec = rot.quat_error(q_des, env.gripper_quat)
        grip = 1.0 if env.grasped == "plug" else -1.0
        if phase == PRESS_APPROACH:
            return self._move_point(face, button + PRESS_STANDOFF_M * n, rotvec, 0.03, grip)
        if phase == PRESS:
            return self._move_point(face, button - PRESS_PAST_M * n, rotvec, 0.015, grip)
        return self._move_point(face, button + RETREAT_M * n, rotvec, 0.03, grip)

    # ---- phases 3-4: catch the plug by its handle -------------------------------------
    def _catch_quat(self) -> np.ndarray:
        """Gripper attitude target: z onto the plug axis, led by the plug's turn over one
        control period."""
        env = self.env
        turn = rot.rotation_between(env.gripper_mat[:, 2], env.plug_axis())
        _, w = env.plug_velocity()
        return rot.quat_mul(rot.axisangle_to_quat(turn + w * DT_S), env.gripper_quat)

    def _catch(self, phase: int) -> np.ndarray:
        env = self.env
        handle = env.site_pos("plug_handle")
        p = env.plug_axis()
        ff = self._point_velocity(handle) * DT_S
        quat_target = self._catch_quat()
        rel = env.grip_pos - handle
        if phase == APPROACH:
            target = handle + PREGRASP_M * p
            along = float(rel @ p)
            if along < 0.03:
                side = rel - along * p
                ns = float(np.linalg.norm(side))
                if ns < 1e-6:  # right on the axis, behind the pin: any side will do
                    side = np.cross(p, [1.0, 0.0, 0.0] if abs(p[0]) < 0.9 else [0.0, 1.0, 0.0])
                    ns = float(np.linalg.norm(side))
                target = target + SIDESTEP_M * side / ns
            target = target + self._keepout(handle, p)
            return servo(env, target, quat_target, grip=-1.0, feedforward_m=ff)
        near = float(np.linalg.norm(rel)) < CLOSE_TOL_M
        return servo(env, handle, quat_target, grip=self.closing(near), max_step_m=0.02,
                     feedforward_m=ff)

    # ---- phases 5-6: carry the plug into the socket -----------------------------------
    def _insert(self, phase: int) -> np.ndarray:
        env = self.env
        s, n = env.socket_frame()
        tip = env.site_pos("plug_tip")
        depth, radial, tilt = env.insertion_error()
        rotvec = rot.rotation_between(env.plug_axis(), n)
        out = -depth  # tip distance in front of the mouth plane, m
        if phase == ALIGN:
            stand = STANDOFF_M if tilt < FAR_TILT_RAD else FAR_STANDOFF_M
            return self._move_point(tip, s + stand * n, rotvec, 0.03, 1.0)
        step = 0.01 if out > 0.015 else 0.004
        goal_out = max(out - step, -INSERT_GOAL_M)
        return self._move_point(tip, s + goal_out * n, rotvec, 0.015, 1.0)
