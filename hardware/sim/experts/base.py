"""Shared pieces of the scripted experts: closed-loop pose servoing of the gripper.

An expert reads the full simulator state of its (unwrapped) environment each step and
returns a 7-D action in [-1, 1]; it re-plans from the current state every step, so drift
and tumble are corrected rather than assumed away.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import MAX_DPOS_M, MAX_DROT_RAD, CabinEnv


class Expert:
    """Base class: ``reset()`` once per episode, then ``act(obs)`` each step."""

    def __init__(self, env: CabinEnv) -> None:
        self.env = env
        self.phase = 0

    def reset(self) -> None:
        self.phase = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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


def clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    """``v`` scaled down to Euclidean norm ``limit`` if it is longer."""
    n = float(np.linalg.norm(v))
    return v * (limit / n) if n > limit else v
