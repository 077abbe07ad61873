"""Faults injected into a cabin task from a given step on: what the world-model guard must
notice (anomaly detection) and what hardware-in-the-loop runs can throw at a device.

``FaultEnv(env, fault, start)`` wraps a cabin task; from step ``start`` of every episode
(counted from its reset) the world changes as the fault says:

- ``stuck-joint``: the task's mechanism seizes: every hinge and slide joint that is not a
  finger (hatch hinge and latch, panel button, drawer slide) is locked where it is (its
  range narrowed to its position, a limit constraint: stable, unlike a huge damping); in
  tasks without one (stow, cap) the gripper's wrist seizes instead (its rotation commands
  are held at 0).
- ``grasp-slip``: the first grasp held at or after ``start`` slips: the weld is released
  while the fingers stay closed, so nothing is caught again until they open.
- ``sensor-bias``: the gripper position sensor reads ``BIAS_M`` off along the cabin x axis.
- ``mass-change``: every task body's mass and inertia x ``MASS_FACTOR`` (a payload heavier
  than declared).

``info["fault_active"]`` says from which step on the fault holds; nothing else in the
observation or the info tells the policy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

FAULTS = ("stuck-joint", "grasp-slip", "sensor-bias", "mass-change")
BIAS_M = 0.03
MASS_FACTOR = 3.0


class FaultEnv(gym.Wrapper):
    """A cabin task with ``fault`` from step ``start`` on (module docstring)."""

    def __init__(self, env: gym.Env, fault: str, start: int = 40) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {fault!r}")
        if start < 0:
            raise ValueError(f"fault start must be >= 0, got {start}")
        super().__init__(env)
        self.fault, self.start = fault, int(start)
        u = env.unwrapped
        m = u.model
        self._mechanism = [j for j in range(m.njnt)
                           if m.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE,
                                                mujoco.mjtJoint.mjJNT_SLIDE)
                           and not m.joint(j).name.startswith("finger")]
        self._saved: tuple[np.ndarray, np.ndarray] | None = None
        self.t = 0
        self.slipped = False

    @property
    def active(self) -> bool:
        return self.t >= self.start

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        m = self.env.unwrapped.model
        if self._saved is not None:
            m.jnt_range[self._mechanism], m.jnt_limited[self._mechanism] = self._saved
            self._saved = None
        self.t, self.slipped = 0, False
        obs, info = self.env.reset(**kwargs)
        self._maybe_start()
        return self._sense(obs), {**info, "fault_active": self.active}

    def _maybe_start(self) -> None:
        if self.t != self.start:
            return
        u = self.env.unwrapped
        m = u.model
        if self.fault == "stuck-joint" and self._mechanism:
            self._saved = (m.jnt_range[self._mechanism].copy(),
                           m.jnt_limited[self._mechanism].copy())
            q = u.data.qpos[m.jnt_qposadr[self._mechanism]]
            m.jnt_range[self._mechanism] = np.stack([q - 1e-4, q + 1e-4], axis=1)
            m.jnt_limited[self._mechanism] = 1
        elif self.fault == "mass-change":
            m.body_mass[u._task_bodies] *= MASS_FACTOR
            m.body_inertia[u._task_bodies] *= MASS_FACTOR
            mujoco.mj_setConst(m, u._scratch)

    def _sense(self, obs: np.ndarray) -> np.ndarray:
        if self.fault != "sensor-bias" or not self.active:
            return obs
        out = np.array(obs, np.float64)
        out[0] += BIAS_M  # gripper_pos x
        return out

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.array(action, np.float64)
        if self.fault == "stuck-joint" and not self._mechanism and self.active:
            a[3:6] = 0.0
        obs, reward, term, trunc, info = self.env.step(a)
        self.t += 1
        self._maybe_start()
        u = self.env.unwrapped
        if self.fault == "grasp-slip" and self.active and not self.slipped and u.grasped:
            u._update_grasp(False)  # the weld lets go; the fingers stay as commanded
            self.slipped = True
        return self._sense(obs), reward, term, trunc, {**info, "fault_active": self.active}
