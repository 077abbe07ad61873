"""Scripted expert of ``stow``: intercept the drifting, tumbling payload at its handle,
grasp it, arrest its tumble, carry it upright over the locker bay, lower it in and let go.

It reads the full state of its ``StowEnv`` every step and derives its phase from it
(``phase_from_state``: what is held, where the payload is, how fast it moves); nothing is
remembered between steps. While catching, every target is the handle's (or the
payload's) pose *one control period ahead* (50 ms), predicted from the payload's current
linear and angular velocity, and the handle's velocity is fed forward (divided by the
drive's ``TRACKING_RATIO``, since a constant command only moves the gripper by that
fraction of the step), so drift and tumble are tracked rather than chased.

Phases:

0. ``APPROACH`` (payload not held): gripper open. With ``u`` the direction from the
   payload centre to the grip point and ``n`` the handle normal (payload z axis), both
   predicted one step ahead: if ``angle(u, n) > 0.5 rad`` the grip point *orbits* the
   payload on a 0.19 m sphere about its (moving) centre, turning ``u`` towards ``n`` by
   at most 0.4 rad per step, gripper pointing at the centre (so the palm never sweeps
   through the box) and its fingers turning across the bar already; inside that cone it
   servoes to a pre-grasp point ``s`` metres out along ``n`` from the handle, with ``s``
   shrinking from 0.10 m to 0 as the grip point's distance from the handle axis (below
   3.5 cm) and the gripper's attitude error (gripper frame vs. the payload frame, fingers
   across the handle bar; below 0.55 rad) vanish, both measured on the current state. It closes when the grip point is within 15 mm of
   the handle; the base's weld then engages.
1. ``CARRY`` (held, not yet over the bay): the payload's *centre* servoes (at most
   0.025 m per step) to a point 0.12 m above the bay's rim, over the bay centre, while the
   payload turns upright (handle normal to +z) and its edges square up with the bay walls
   (yaw to the nearest multiple of 90 deg), at most 0.2 rad per step; the rotation is
   about the palm, so its effect on the payload centre is compensated. Each step's pose
   target starts from the current pose, so the drive also bleeds off the tumble the
   payload had when caught.
2. ``DESCEND`` (held, centre within ``OVER_BAY_M`` of the bay's vertical axis, no higher
   than 2 cm above the carry point, attitude within ``UPRIGHT_RAD``): the payload centre
   is lowered (at most 0.015 m per step) to its resting spot 1.5 cm above the bay floor,
   attitude still held.
3. ``RELEASE`` (held, centre inside the stowage volume at least 2 cm below its top,
   moving at < ``RELEASE_SPEED_MPS`` and spinning at < ``RELEASE_SPIN_RADPS``): gripper
   open, no motion. The released payload keeps its (low) velocity, so the criterion holds
   on that step and the episode ends.

A payload released anywhere else is simply caught again (``APPROACH``).
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import TRACKING_RATIO
from hardware.sim.experts.base import Expert, clip_norm, servo
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.stow import BAY_CENTER_M, BAY_RIM_Z_M, BAY_TARGET_M, StowEnv

DT_S = 1.0 / CONTROL_HZ
APPROACH, CARRY, DESCEND, RELEASE = range(4)

ORBIT_RADIUS_M = 0.19  # grip point to payload centre while orbiting
ORBIT_STEP_RAD = 0.4  # orbit advance per step
CONE_RAD = 0.5  # final approach when within this angle of the handle normal
PREGRASP_M = 0.10  # largest pre-grasp stand-off along the handle normal
CLOSE_DIST_M = 0.015  # close the gripper within this distance of the handle
CARRY_POINT_M = np.array([BAY_CENTER_M[0], BAY_CENTER_M[1], BAY_RIM_Z_M + 0.12])
OVER_BAY_M = 0.025  # horizontal distance of the centre from the bay axis to descend
UPRIGHT_RAD = 0.12  # attitude error (upright, walls squared) to descend
RELEASE_SPEED_MPS = 0.015
RELEASE_SPIN_RADPS = 0.3


def _rotvec(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World rotation vector (rad) turning rotation matrix ``current`` into ``target``."""
    return rot.quat_to_axisangle(rot.mat_to_quat(target @ current.T))


def _grasp_frame(z: np.ndarray, across: np.ndarray, r_g: np.ndarray) -> np.ndarray:
    """Gripper attitude (rotation matrix) with its z axis on unit ``z`` and its x axis
    (the fingers' closing direction) along ``across`` made orthogonal to ``z``, with the
    sign nearer to the gripper's current x axis (columns of ``r_g``)."""
    x = across - (across @ z) * z
    x /= max(float(np.linalg.norm(x)), 1e-9)
    if x @ r_g[:, 0] < 0.0:
        x = -x
    return np.column_stack([x, np.cross(z, x), z])


class StowExpert(Expert):
    """Waypoint + feedback expert for ``StowEnv`` (phases in the module docstring)."""

    env: StowEnv
    PHASES = ("approach", "carry", "descend", "release")

    def phase_from_state(self) -> int:
        env = self.env
        if env.grasped != "payload":
            return APPROACH
        c = env.body_pos("payload")
        v, w = env.payload_velocity()
        if (env.in_stow_volume(c + np.array([0.0, 0.0, 0.02]))
                and np.linalg.norm(v) < RELEASE_SPEED_MPS
                and np.linalg.norm(w) < RELEASE_SPIN_RADPS):
            return RELEASE
        over = np.linalg.norm(c[:2] - BAY_CENTER_M[:2]) < OVER_BAY_M
        low = c[2] < CARRY_POINT_M[2] + 0.02
        if over and low and np.linalg.norm(self._upright()[1]) < UPRIGHT_RAD:
            return DESCEND
        return CARRY

    def act_in(self, phase: int) -> np.ndarray:
        if phase == APPROACH:
            return self._approach()
        if phase == RELEASE:
            action = np.zeros(7)
            action[6] = -1.0
            return action
        return self._carry(phase)

    # ---- phase 0: intercept and grasp the handle ----------------------------------------
    def _approach(self) -> np.ndarray:
        env = self.env
        c, h = env.body_pos("payload"), env.site_pos("payload_handle")
        v, w = env.payload_velocity()
        r_p = env.data.body("payload").xmat.reshape(3, 3)
        step = rot.quat_to_mat(rot.axisangle_to_quat(w * DT_S))  # payload turn in one step
        c1 = c + v * DT_S
        # Attitude target: the payload's, led by its turn over one step / TRACKING_RATIO.
        r_p1 = rot.quat_to_mat(rot.axisangle_to_quat(w * DT_S / TRACKING_RATIO)) @ r_p
        n1 = r_p1[:, 2]
        h1 = c1 + step @ (h - c)
        g = env.grip_pos
        r_g = rot.quat_to_mat(env.gripper_quat)
        radial = g - c1
        dist = float(np.linalg.norm(radial))
        u = radial / dist if dist > 1e-9 else n1
        alpha = float(np.arccos(np.clip(u @ n1, -1.0, 1.0)))

        if alpha > CONE_RAD:
            # Orbit the payload towards the handle side, gripper pointing at its centre,
            # fingers already turning across the bar (so the attitude needs no jump when the
            # final approach begins).
            turn = rot.rotation_between(u, n1)
            angle = float(np.linalg.norm(turn))
            u_next = rot.quat_to_mat(rot.axisangle_to_quat(
                turn * min(1.0, ORBIT_STEP_RAD / max(angle, 1e-9)))) @ u
            target = c1 + ORBIT_RADIUS_M * u_next
            return servo(env, target, rot.mat_to_quat(_grasp_frame(u_next, r_p1[:, 1], r_g)),
                         grip=-1.0, max_step_m=0.04, max_rot_rad=0.4,
                         feedforward_m=v * DT_S * (1.0 / TRACKING_RATIO - 1.0))

        # Final approach along the handle normal: gripper z on the normal, fingers (gripper
        # x) across the handle bar (payload x), i.e. gripper x = +-payload y.
        r_target = _grasp_frame(n1, r_p1[:, 1], r_g)
        att_err = float(np.linalg.norm(_rotvec(r_target, r_g)))
        # Stand-off shrinks as the grip point gets onto the (current) handle axis and the
        # attitude lines up; gated on the current state so the lead cannot hold it off.
        off = g - h
        lateral = float(np.linalg.norm(off - (off @ r_p[:, 2]) * r_p[:, 2]))
        s = PREGRASP_M * min(1.0, max(0.0, (lateral - 0.005) / 0.03, (att_err - 0.25) / 0.3))
        target = h1 + s * n1
        v_h = v + np.cross(w, h - c)
        dist_h = float(np.linalg.norm(g - h))
        grip = self.closing(dist_h < CLOSE_DIST_M)
        return servo(env, target, rot.mat_to_quat(r_target), grip=grip, max_step_m=0.04,
                     max_rot_rad=0.4, feedforward_m=v_h * DT_S * (1.0 / TRACKING_RATIO - 1.0))

    # ---- phases 1-2: carry over the bay, lower it in ------------------------------------
    def _upright(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rotation matrix of the payload, world rotation vector rad)`` turning the
        payload upright (handle normal to +z) with its edges squared to the bay walls
        (yaw to the nearest multiple of 90 deg)."""
        r_p = self.env.body_mat("payload")
        r_up = rot.quat_to_mat(rot.axisangle_to_quat(
            rot.rotation_between(r_p[:, 2], np.array([0.0, 0.0, 1.0])))) @ r_p
        yaw = float(np.arctan2(r_up[1, 0], r_up[0, 0]))
        yaw_err = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
        r_goal = rot.quat_to_mat(rot.axisangle_to_quat(np.array([0.0, 0.0, -yaw_err]))) @ r_up
        return r_p, _rotvec(r_goal, r_p)

    def _carry(self, phase: int) -> np.ndarray:
        env = self.env
        c = env.body_pos("payload")
        _, rotvec = self._upright()
        goal, max_step = (CARRY_POINT_M, 0.025) if phase == CARRY else (BAY_TARGET_M, 0.015)
        rotvec = clip_norm(rotvec, 0.2)
        turn = rot.quat_to_mat(rot.axisangle_to_quat(rotvec))
        arm = c - env.gripper_pos  # the commanded rotation is about the palm centre
        move = clip_norm(goal - c, max_step) - (turn @ arm - arm)
        quat_target = rot.quat_mul(rot.axisangle_to_quat(rotvec), env.gripper_quat)
        return servo(env, env.grip_pos + move, quat_target, grip=1.0,
                     max_step_m=max_step + 0.02, max_rot_rad=0.2)
