"""Shared pieces of the scripted experts: memoryless phases, closed-loop pose servoing.

An expert reads the full simulator state of its (unwrapped) environment each step and
returns a 7-D action in [-1, 1]. It keeps no memory between steps: ``phase_from_state()``
derives the phase of the task from the state alone (what is grasped, whether the panel is
armed, how far the drawer is open, where the grip point is relative to its approach
corridor, ...), and the action follows from that phase and the state. So it re-plans from
the current state every step (drift and tumble are corrected rather than assumed away)
and can take over from any state a learner reaches, which DAgger's relabelling needs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import FINGER_CATCH_M, MAX_DPOS_M, MAX_DROT_RAD, CabinEnv


class Expert:
    """Base class: ``act(obs)`` each step (``reset()`` is kept for the rollout API; there
    is nothing to reset). ``phase`` is the phase of the last ``act`` (for logs and tests),
    an index into ``PHASES``."""

    PHASES: ClassVar[tuple[str, ...]] = ()
    # the last phase every successful episode passes through (-1: the last of PHASES; a
    # later one may be skipped where the task can succeed before it)
    FINAL_PHASE: ClassVar[int] = -1

    def __init__(self, env: CabinEnv) -> None:
        self.env = env
        self.phase = 0

    def reset(self) -> None:
        self.phase = 0

    @property
    def final_phase(self) -> int:
        """``FINAL_PHASE`` as an index into ``PHASES``."""
        return self.FINAL_PHASE % len(self.PHASES)

    def phase_from_state(self) -> int:
        """The task phase of the current state (an index into ``PHASES``)."""
        raise NotImplementedError

    def act(self, obs: np.ndarray) -> np.ndarray:
        """7-D action in [-1, 1] for the current state (``obs`` itself is not used: the
        expert reads the full state)."""
        self.phase = self.phase_from_state()
        return self.act_in(self.phase)

    def act_in(self, phase: int) -> np.ndarray:
        raise NotImplementedError

    def closing(self, near: bool) -> float:
        """Grip command for a grasp attempt: close when ``near`` the handle while the
        fingers are still open enough to catch it, otherwise open (so a gripper that
        closed on nothing opens and tries again)."""
        env = self.env
        return 1.0 if near and env.finger_opening > FINGER_CATCH_M else -1.0


FUNNEL_SLOPE = 0.1  # extra radial tolerance per metre of distance from the mating point
FUNNEL_TILT_SLOPE = 0.5  # extra tilt tolerance (rad) per metre of distance


def in_funnel(radial_m: float, tilt_rad: float, distance_m: float, radial_tol_m: float,
              tilt_tol_rad: float) -> bool:
    """Whether a part ``distance_m`` in front of its mating point (axial, >= 0) is lined up
    well enough to go on in: the tolerances at the mating point widen linearly with the
    distance (``FUNNEL_SLOPE``, ``FUNNEL_TILT_SLOPE``), so a small disturbance on the way
    in is corrected while advancing rather than sending the part back out."""
    d = max(distance_m, 0.0)
    return (radial_m < radial_tol_m + FUNNEL_SLOPE * d
            and tilt_rad < tilt_tol_rad + FUNNEL_TILT_SLOPE * d)


def in_corridor(env: CabinEnv, point: np.ndarray, axis: np.ndarray, length_m: float,
                radius_m: float, quat_target: np.ndarray, rot_tol_rad: float) -> bool:
    """Whether the grip point lies in the straight approach corridor to ``point``: within
    ``radius_m`` of the line through ``point`` along unit ``axis``, between 1 cm behind
    ``point`` and ``length_m`` out along ``axis``, with the gripper within ``rot_tol_rad``
    of ``quat_target``."""
    rel = env.grip_pos - np.asarray(point, float)
    along = float(rel @ axis)
    lateral = float(np.linalg.norm(rel - along * axis))
    if not (-0.01 <= along <= length_m and lateral <= radius_m):
        return False
    return float(np.linalg.norm(rot.quat_error(quat_target, env.gripper_quat))) <= rot_tol_rad


def servo(env: CabinEnv, grip_target: np.ndarray, quat_target: np.ndarray | None = None,
          grip: float = -1.0, max_step_m: float = 0.03, max_rot_rad: float = 0.3,
          feedforward_m: np.ndarray | None = None) -> np.ndarray:
    """Action moving the *grip point* to ``grip_target`` (m, world) and the gripper to
    ``quat_target`` (wxyz; ``None`` keeps the current orientation).

    The step is clipped to ``max_step_m`` metres and ``max_rot_rad`` radians per control
    step; ``feedforward_m`` (m per step) is added before clipping, e.g. a target's drift
    velocity times the control period.
    """
    delta = np.asarray(grip_target, float) - env.grip_pos
    if feedforward_m is not None:
        delta = delta + feedforward_m
    n = np.linalg.norm(delta)
    if n > max_step_m:
        delta *= max_step_m / n
    action = np.zeros(7)
    action[:3] = delta / MAX_DPOS_M
    if quat_target is not None:
        err = rot.quat_error(np.asarray(quat_target, float), env.gripper_quat)
        a = np.linalg.norm(err)
        if a > max_rot_rad:
            err *= max_rot_rad / a
        action[3:6] = err / MAX_DROT_RAD
    action[6] = grip
    return np.clip(action, -1.0, 1.0)


ORBIT_STEP_RAD = 0.4  # orbit advance per step towards the handle side
ON_AXIS_RAD = 0.1  # within this angle of the handle axis: straight at the pre-grasp point
CONE_RAD = 0.5  # beyond this angle: on the orbit sphere


def orbit_target(grip: np.ndarray, centre: np.ndarray, handle: np.ndarray,
                 axis: np.ndarray, standoff_m: float, radius_m: float,
                 align: float) -> tuple[np.ndarray, float]:
    """Grip-point target for catching a free body by a handle on its ``axis`` side:
    ``(target m, k)``. With ``u`` the direction from ``centre`` to the grip point and
    ``alpha`` its angle from ``axis``, the target lies on the ray from the centre along
    ``u`` turned towards ``axis`` by at most ``ORBIT_STEP_RAD``, at a radius blended by
    ``k = clip((alpha - ON_AXIS_RAD) / (CONE_RAD - ON_AXIS_RAD), 0, 1)`` from the
    pre-grasp point's (``handle + s axis``) to ``radius_m``: far round the body the grip
    point orbits it (so the palm never sweeps through it), on the handle side it goes
    straight in. The stand-off ``s = standoff_m * max(align, k)`` shrinks to 0 as the
    caller's ``align`` (0 = lined up, 1 = not) and ``k`` vanish. Continuous in the state
    but where the grip point is exactly opposite the handle."""
    radial = np.asarray(grip, float) - centre
    dist = float(np.linalg.norm(radial))
    u = radial / dist if dist > 1e-9 else axis
    alpha = float(np.arccos(np.clip(u @ axis, -1.0, 1.0)))
    turn = rot.rotation_between(u, axis)
    u_next = rot.quat_to_mat(rot.axisangle_to_quat(
        turn * min(1.0, ORBIT_STEP_RAD / max(alpha, 1e-9)))) @ u
    k = min(1.0, max(0.0, (alpha - ON_AXIS_RAD) / (CONE_RAD - ON_AXIS_RAD)))
    s = standoff_m * min(1.0, max(align, k))
    near = float(np.linalg.norm(handle + s * axis - centre))
    return centre + (near + (radius_m - near) * k) * u_next, k


def turn_towards(r_g: np.ndarray, z: np.ndarray, across: np.ndarray | None = None
                 ) -> np.ndarray:
    """World rotation vector (rad) turning the gripper (rotation matrix ``r_g``) towards
    an attitude with its z axis on unit ``z`` and, if given, its x axis along +-``across``
    (a bar grasp's fingers): the shortest turn of the z axis plus a spin about it of at
    most 90 deg. Unlike the rotation to one target frame, which jumps wherever the error
    passes 180 deg, this is continuous everywhere but where the z axis points exactly
    away from ``z`` and where the spin error is exactly 90 deg."""
    tilt = rot.rotation_between(r_g[:, 2], z)
    if across is None:
        return tilt
    x = rot.quat_to_mat(rot.axisangle_to_quat(tilt)) @ r_g[:, 0]  # x once z is on target
    a = np.asarray(across, float) - (np.asarray(across, float) @ z) * z
    a /= max(float(np.linalg.norm(a)), 1e-9)
    spin = float(np.arctan2(np.cross(x, a) @ z, x @ a))
    spin = (spin + np.pi / 2) % np.pi - np.pi / 2  # +-across: the nearer one
    return tilt + spin * z


def clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    """``v`` scaled down to Euclidean norm ``limit`` if it is longer."""
    n = float(np.linalg.norm(v))
    return v * (limit / n) if n > limit else v
