"""``CabinEnv``: the gymnasium base of the five zero-g cabin tasks.

Action (7-D, each in [-1, 1], applied at 20 Hz):
``(dx, dy, dz, droll, dpitch, dyaw, grip)``. The first three scale to a position step of
at most ``MAX_DPOS_M`` = 0.05 m in the world frame, the next three to a rotation vector
(axis * angle, world frame) of at most ``MAX_DROT_RAD`` = 0.5 rad, as robosuite's
OSC_POSE delta controller. The gripper's pose target is the *current* pose plus that
delta, so the controller never winds up against an obstacle; through the compliant drive
(see ``scene``) a constant command moves the gripper by ``TRACKING_RATIO`` (about 73%) of
the commanded step per control period once settled. ``grip > 0`` closes.

Observation: ``gripper_pos`` (3, m, world) + ``gripper_quat`` (4, wxyz) +
``finger_qpos`` (2, m, 0 = closed, 0.04 = open) + the task's features (see each task's
``OBS_FIELDS``). ``CabinEnv.obs_layout()`` lists every field with its slice.

Per reset, task body masses are scaled by U(``MASS_SCALE``) and contact friction by
U(``FRICTION_SCALE``); each task then randomizes its own poses, drift and tumble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.scene import FINGER_OPEN_M, SUBSTEPS, TaskScene, build_mjcf

MAX_DPOS_M = 0.05
MAX_DROT_RAD = 0.5
TRACKING_RATIO = 0.73  # settled motion per control step / commanded delta (free space)
GRASP_TOLERANCE_M = 0.025
MASS_SCALE = (0.7, 1.3)
FRICTION_SCALE = (0.7, 1.3)

BASE_OBS_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("gripper_pos", 3, "gripper (palm centre) position in the cabin frame, m"),
    ("gripper_quat", 4, "gripper orientation, unit quaternion wxyz"),
    ("finger_qpos", 2, "left/right finger opening, m (0 closed, 0.04 open)"),
)


@dataclass(frozen=True)
class ObsField:
    """One named slice of the observation vector."""

    name: str
    start: int
    size: int
    doc: str

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


class CabinEnv(gym.Env):
    """Base class: subclasses give ``NAME``, ``OBS_FIELDS``, ``MAX_STEPS``,
    ``SUCCESS_CRITERION`` and implement ``scene``, ``_randomize``, ``_features`` and
    ``_evaluate``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}
    NAME: ClassVar[str] = ""
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = ()
    MAX_STEPS: ClassVar[int] = 400
    SUCCESS_CRITERION: ClassVar[str] = ""

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_steps = int(max_steps or self.MAX_STEPS)
        self._scene = self.scene()
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.NAME, self._scene))
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        m = self.model
        self._gripper_body = m.body("gripper").id
        self._target_mocap = m.body_mocapid[m.body("target").id]
        self._grip_site = m.site("grip").id
        self._finger_qadr = [m.jnt_qposadr[m.joint(n).id] for n in ("finger_l", "finger_r")]
        self._grasp = {
            body: (m.equality(f"grasp_{body}").id, m.body(body).id, m.site(site).id)
            for body, site in self._scene.graspables.items()
        }
        self.grasped: str | None = None
        task_bodies = [i for i in range(1, m.nbody) if i != self._gripper_body
                       and m.body_rootid[i] != self._gripper_body and m.body_mocapid[i] < 0]
        self._task_bodies = np.array(task_bodies, dtype=int)
        self._task_geoms = np.flatnonzero(np.isin(m.geom_bodyid, self._task_bodies))
        self._nominal_mass = m.body_mass.copy()
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_friction = m.geom_friction.copy()
        obs_dim = sum(size for _, size, _ in BASE_OBS_FIELDS + self.OBS_FIELDS)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self.steps = 0
        self._renderer: mujoco.Renderer | None = None

    # ---- subclass hooks -------------------------------------------------------------
    def scene(self) -> TaskScene:
        raise NotImplementedError

    def _randomize(self, rng: np.random.Generator) -> None:
        """Set task poses, velocities (drift, tumble) after ``mj_resetData``."""
        raise NotImplementedError

    def _features(self) -> np.ndarray:
        raise NotImplementedError

    def _evaluate(self) -> tuple[float, bool]:
        """Return ``(shaped reward, success)`` for the current state."""
        raise NotImplementedError

    # ---- layout -------------------------------------------------------------------
    @classmethod
    def obs_layout(cls) -> list[ObsField]:
        """Every observation field with its start index, size and meaning."""
        out, start = [], 0
        for name, size, doc in BASE_OBS_FIELDS + cls.OBS_FIELDS:
            out.append(ObsField(name, start, size, doc))
            start += size
        return out

    # ---- state accessors (used by the tasks and the scripted experts) -----------------
    @property
    def gripper_pos(self) -> np.ndarray:
        return self.data.xpos[self._gripper_body].copy()

    @property
    def gripper_quat(self) -> np.ndarray:
        return self.data.xquat[self._gripper_body].copy()

    @property
    def grip_pos(self) -> np.ndarray:
        """World position of the grip point between the fingers, m."""
        return self.data.site_xpos[self._grip_site].copy()

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()

    def body_quat(self, name: str) -> np.ndarray:
        return self.data.body(name).xquat.copy()

    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site(name).xpos.copy()

    def site_mat(self, name: str) -> np.ndarray:
        return self.data.site(name).xmat.reshape(3, 3).copy()

    def joint_qpos(self, name: str) -> np.ndarray:
        j = self.model.joint(name)
        adr, n = j.qposadr[0], {0: 7, 1: 4, 2: 1, 3: 1}[int(j.type[0])]
        return self.data.qpos[adr : adr + n].copy()

    def joint_qvel(self, name: str) -> np.ndarray:
        j = self.model.joint(name)
        adr, n = j.dofadr[0], {0: 6, 1: 3, 2: 1, 3: 1}[int(j.type[0])]
        return self.data.qvel[adr : adr + n].copy()

    def set_free_body(self, joint: str, pos: np.ndarray, quat: np.ndarray,
                      linvel: np.ndarray | None = None, angvel: np.ndarray | None = None) -> None:
        """Place a free-jointed body; velocities in the world frame (m/s, rad/s)."""
        j = self.model.joint(joint)
        qa, va = j.qposadr[0], j.dofadr[0]
        self.data.qpos[qa : qa + 3] = pos
        self.data.qpos[qa + 3 : qa + 7] = quat / np.linalg.norm(quat)
        if linvel is not None:
            self.data.qvel[va : va + 3] = linvel
        if angvel is not None:
            # MuJoCo stores a free joint's angular velocity in the body frame.
            self.data.qvel[va + 3 : va + 6] = rot.quat_to_mat(quat).T @ np.asarray(angvel)

    # ---- gymnasium API --------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        m, d, rng = self.model, self.data, self.np_random
        mujoco.mj_resetData(m, d)
        m.body_mass[:] = self._nominal_mass
        m.body_inertia[:] = self._nominal_inertia
        m.geom_friction[:] = self._nominal_friction
        scale = rng.uniform(*MASS_SCALE, size=len(self._task_bodies))
        m.body_mass[self._task_bodies] *= scale
        m.body_inertia[self._task_bodies] *= scale[:, None]
        m.geom_friction[self._task_geoms, 0] *= rng.uniform(*FRICTION_SCALE,
                                                            size=len(self._task_geoms))
        for eq_id, _, _ in self._grasp.values():
            d.eq_active[eq_id] = 0
        self.grasped = None
        start = np.asarray(self._scene.gripper_pos) + rng.uniform(-0.03, 0.03, 3)
        self.set_free_body("gripper", start, np.asarray(self._scene.gripper_quat, float))
        d.qpos[self._finger_qadr] = FINGER_OPEN_M
        d.ctrl[0] = FINGER_OPEN_M
        self._randomize(rng)
        # Derived constants must follow the new masses (or a tumbling body does not conserve
        # angular momentum) and any model change ``_randomize`` made (fixed-body poses,
        # joint properties). mj_setConst uses its MjData as scratch: give it a spare one.
        mujoco.mj_setConst(m, self._scratch)
        mujoco.mj_forward(m, d)
        d.mocap_pos[self._target_mocap] = self.gripper_pos
        d.mocap_quat[self._target_mocap] = self.gripper_quat
        self.steps = 0
        _, success = self._evaluate()
        return self._obs(), {"success": bool(success)}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(7), -1.0, 1.0)
        d = self.data
        pos, quat = self.gripper_pos, self.gripper_quat
        d.mocap_pos[self._target_mocap] = pos + a[:3] * MAX_DPOS_M
        turn = rot.axisangle_to_quat(a[3:6] * MAX_DROT_RAD)
        d.mocap_quat[self._target_mocap] = rot.quat_mul(turn, quat)
        close = a[6] > 0.0
        d.ctrl[0] = 0.0 if close else FINGER_OPEN_M
        self._update_grasp(close)
        mujoco.mj_step(self.model, d, nstep=SUBSTEPS)
        self.steps += 1
        reward, success = self._evaluate()
        truncated = self.steps >= self.max_steps
        info = {"success": bool(success), "grasped": self.grasped}
        return self._obs(), float(reward), bool(success), truncated, info

    def _update_grasp(self, close: bool) -> None:
        d = self.data
        if not close:
            if self.grasped is not None:
                d.eq_active[self._grasp[self.grasped][0]] = 0
                self.grasped = None
            return
        if self.grasped is not None:
            return
        grip = self.grip_pos
        for body, (eq_id, body_id, site_id) in self._grasp.items():
            if np.linalg.norm(d.site_xpos[site_id] - grip) <= GRASP_TOLERANCE_M:
                self._engage_weld(eq_id, body_id)
                self.grasped = body
                return

    def _engage_weld(self, eq_id: int, body_id: int) -> None:
        """Activate weld ``eq_id`` holding ``body_id`` at its current pose relative to
        the gripper (eq_data = anchor 3, relpos 3, relquat 4, torquescale 1)."""
        d, g = self.data, self._gripper_body
        r1 = d.xmat[g].reshape(3, 3)
        self.model.eq_data[eq_id, 0:3] = 0.0
        self.model.eq_data[eq_id, 3:6] = r1.T @ (d.xpos[body_id] - d.xpos[g])
        self.model.eq_data[eq_id, 6:10] = rot.quat_mul(rot.quat_conj(d.xquat[g]), d.xquat[body_id])
        self.model.eq_data[eq_id, 10] = 1.0
        d.eq_active[eq_id] = 1

    def _obs(self) -> np.ndarray:
        d = self.data
        return np.concatenate([self.gripper_pos, self.gripper_quat,
                               d.qpos[self._finger_qadr], self._features()])

    # ---- rendering -----------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 640)
        self._renderer.update_scene(self.data, camera="overview")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
