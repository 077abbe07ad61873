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
   predicted one step ahead, and ``alpha = angle(u, n)``: the grip point servoes to a
   point on the ray from the centre along ``u`` turned towards ``n`` by at most 0.4 rad,
   at a radius blended smoothly (``alpha`` from 0.1 to 0.5 rad) from the pre-grasp
   point's (handle + stand-off ``s`` along ``n``) to 0.19 m, so the grip point orbits the
   payload towards its handle side and the palm never sweeps through the box. The
   stand-off ``s`` shrinks from 0.10 m to 0 as ``alpha``, the grip point's distance from
   the handle axis (below 3.5 cm) and the gripper's attitude error (below 0.55 rad)
   vanish. From the start the gripper turns towards the grasp attitude (z on the normal,
   fingers across the bar; ``turn_towards``: z first, then the spin, which has no jump
   at a 180 deg error). The handle's velocity is fed forward. It closes when the grip
   point is within 10 mm of the handle; the base's weld then engages.
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
   open, no motion. The gate is wide (0.05 m/s, 0.5 rad/s, against the criterion's
   0.02 m/s and 0.5 rad/s), so the expert lets go a few steps before the payload comes to
   rest, as a learner does that opens a little early.
4. ``CLEAR`` (not held, centre inside the stowage volume, slower than ``CLEAR_SPEED_MPS``
   and ``CLEAR_SPIN_RADPS``): gripper open, the grip point rises straight up at most
   ``CLEAR_STEP_M`` per step to ``CLEAR_HEIGHT_M`` above the rim, attitude kept, while the
   released payload settles on the bay floor and the criterion comes to hold. So the
   demonstrations show what to do after letting go: back off, not catch again.

A payload released anywhere else (or leaving the bay fast) is caught again
(``APPROACH``).
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import TRACKING_RATIO
from hardware.sim.experts.base import Expert, clip_norm, orbit_target, servo, turn_towards
from hardware.sim.scene import CONTROL_HZ
from hardware.sim.tasks.stow import BAY_CENTER_M, BAY_RIM_Z_M, BAY_TARGET_M, StowEnv

DT_S = 1.0 / CONTROL_HZ
APPROACH, CARRY, DESCEND, RELEASE, CLEAR = range(5)

ORBIT_RADIUS_M = 0.19  # grip point to payload centre while orbiting
PREGRASP_M = 0.10  # largest pre-grasp stand-off along the handle normal
CLOSE_DIST_M = 0.010  # close the gripper within this distance of the handle
CARRY_POINT_M = np.array([BAY_CENTER_M[0], BAY_CENTER_M[1], BAY_RIM_Z_M + 0.12])
OVER_BAY_M = 0.025  # horizontal distance of the centre from the bay axis to descend
UPRIGHT_RAD = 0.12  # attitude error (upright, walls squared) to descend
RELEASE_SPEED_MPS = 0.05
RELEASE_SPIN_RADPS = 0.5
CLEAR_SPEED_MPS = 0.1  # a free payload in the bay slower than this is left to settle
CLEAR_SPIN_RADPS = 1.0
CLEAR_STEP_M = 0.01
CLEAR_HEIGHT_M = 0.12  # grip point above the rim plane after backing off


def _rotvec(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World rotation vector (rad) turning rotation matrix ``current`` into ``target``."""
    return rot.quat_to_axisangle(rot.mat_to_quat(target @ current.T))


class StowExpert(Expert):
    """Waypoint + feedback expert for ``StowEnv`` (phases in the module docstring)."""

    env: StowEnv
    PHASES = ("approach", "carry", "descend", "release", "clear")
    FINAL_PHASE = RELEASE  # released slowly enough, the payload is stowed at once

    def phase_from_state(self) -> int:
        env = self.env
        c = env.body_pos("payload")
        v, w = env.payload_velocity()
        if env.grasped != "payload":
            settling = (env.in_stow_volume(c) and np.linalg.norm(v) < CLEAR_SPEED_MPS
                        and np.linalg.norm(w) < CLEAR_SPIN_RADPS)
            return CLEAR if settling else APPROACH
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
        if phase == CLEAR:
            target = self.env.grip_pos
            target[2] = max(target[2], BAY_RIM_Z_M + CLEAR_HEIGHT_M)
            return servo(self.env, target, grip=-1.0, max_step_m=CLEAR_STEP_M)
        return self._carry(phase)

    # ---- phase 0: intercept and grasp the handle ----------------------------------------
    def _approach(self) -> np.ndarray:
        env = self.env
        c, h = env.body_pos("payload"), env.site_pos("payload_handle")
        v, w = env.payload_velocity()
        r_p = env.body_mat("payload")
        step = rot.quat_to_mat(rot.axisangle_to_quat(w * DT_S))  # payload turn in one step
        c1 = c + v * DT_S
        # Attitude target: the payload's, led by its turn over one step / TRACKING_RATIO.
        r_p1 = rot.quat_to_mat(rot.axisangle_to_quat(w * DT_S / TRACKING_RATIO)) @ r_p
        n1 = r_p1[:, 2]
        h1 = c1 + step @ (h - c)
        g, r_g = env.grip_pos, env.gripper_mat
        # The attitude target is the grasp's from the start (z on the handle normal,
        # fingers across the bar), so the gripper turns once, early, while it moves round.
        quat_target = rot.quat_mul(rot.axisangle_to_quat(turn_towards(r_g, n1, r_p1[:, 1])),
                                   env.gripper_quat)
        # Stand-off along the normal: shrinks as the grip point gets onto the (current)
        # handle axis and the attitude lines up (gated on the current state).
        att_err = float(np.linalg.norm(turn_towards(r_g, r_p[:, 2], r_p[:, 1])))
        off = g - h
        lateral = float(np.linalg.norm(off - (off @ r_p[:, 2]) * r_p[:, 2]))
        align = max(0.0, (lateral - 0.005) / 0.03, (att_err - 0.25) / 0.3)
        target, k = orbit_target(g, c1, h1, n1, PREGRASP_M, ORBIT_RADIUS_M, align)
        v_h = v + np.cross(w, h - c)
        ff = ((1.0 - k) * v_h + k * v) * DT_S * (1.0 / TRACKING_RATIO - 1.0)
        grip = self.closing(float(np.linalg.norm(g - h)) < CLOSE_DIST_M)
        return servo(env, target, quat_target, grip=grip, max_step_m=0.04, max_rot_rad=0.4,
                     feedforward_m=ff)

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
