"""``CabinEnv``: the gymnasium base of the five zero-g cabin tasks.

Action (7-D, each in [-1, 1], applied at 20 Hz):
``(dx, dy, dz, droll, dpitch, dyaw, grip)``. The first three scale to a position step of
at most ``MAX_DPOS_M`` = 0.05 m in the world frame, the next three to a rotation vector
(axis * angle, world frame) of at most ``MAX_DROT_RAD`` = 0.5 rad, as robosuite's
OSC_POSE delta controller. The gripper's pose target is the *current* pose plus that
delta, so the controller never winds up against an obstacle; through the compliant drive
(see ``scene``) a constant command moves the gripper by ``TRACKING_RATIO`` (about 76%) of
the commanded step per control period once settled. ``grip > 0`` closes.

Observation: ``gripper_pos`` (3, m, world) + ``gripper_rot6`` (6: the gripper's x and z
axes in the world frame, the continuous 6-D rotation representation) + ``finger_qpos``
(2, m, 0 = closed, 0.04 = open) + ``grasped`` (one flag per entry of the task's
``GRASPS``: 1 for the body held, all 0 when nothing is held) + the task's features (see
each task's ``OBS_FIELDS``). ``CabinEnv.obs_layout()`` lists every field with its slice.
Orientations are never quaternions (their sign is arbitrary); vectors named ``*_g`` are
expressed in the gripper frame.

Grasping (``hardware.sim.grasp``): commanding the gripper closed engages the weld of a
task body only while the fingers are still closing (opening above ``FINGER_CATCH_M``)
and only within the position and angle tolerance of one of the task's ``GRASPS``; the
body is then held at the canonical grasp pose. Commanding it open releases it.

Per reset, task body masses are scaled by U(``MASS_SCALE``) and contact friction by
U(``FRICTION_SCALE``); each task then randomizes its own poses, drift and tumble.

Numerical blow-ups: when MuJoCo finds a non-finite or huge position, velocity or
acceleration it resets the simulation to the model's rest state. The step that does so
ends the episode (``truncated``, ``info["unstable"] = True``, never a success), and
MuJoCo's warning text goes to the ``spikeflight.sim`` logger (stderr), not to stdout
where it would corrupt ``--json`` output, nor to a ``MUJOCO_LOG.TXT`` in the working
directory.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from hardware.sim import grasp as grasping
from hardware.sim import rotations as rot
from hardware.sim.grasp import Grasp
from hardware.sim.layout import ObsField
from hardware.sim.scene import FINGER_OPEN_M, GRIP_OFFSET_M, SUBSTEPS, TaskScene, build_mjcf

_log = logging.getLogger("spikeflight.sim")
mujoco.set_mju_user_warning(lambda msg: _log.warning("MuJoCo: %s", msg))
_BLOWUPS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
            mujoco.mjtWarning.mjWARN_BADQACC)

MAX_DPOS_M = 0.05
MAX_DROT_RAD = 0.5
TRACKING_RATIO = 0.76  # settled motion per control step / commanded delta (free space)
FINGER_CATCH_M = 0.5 * FINGER_OPEN_M  # a grasp can engage only while fingers are wider
MASS_SCALE = (0.7, 1.3)
FRICTION_SCALE = (0.7, 1.3)

BASE_OBS_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("gripper_pos", 3, "gripper (palm centre) position in the cabin frame, m"),
    ("gripper_rot6", 6, "gripper x axis (finger closing direction) and z axis (grip point "
                        "to palm), unit, world frame"),
    ("finger_qpos", 2, "left/right finger opening, m (0 closed, 0.04 open)"),
)
# Model arrays a reset may randomize: saved and restored with the simulator state.
_MODEL_STATE = ("body_mass", "body_inertia", "body_pos", "body_quat", "geom_friction",
                "dof_damping", "dof_frictionloss", "jnt_stiffness", "eq_data")


class CabinEnv(gym.Env):
    """Base class: subclasses give ``NAME``, ``GRASPS``, ``OBS_FIELDS``, ``MAX_STEPS``,
    ``SUCCESS_CRITERION`` (and ``STATE_ATTRS``, Python attributes that are part of the
    task's state) and implement ``scene``, ``_randomize``, ``_features`` and
    ``_evaluate``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}
    NAME: ClassVar[str] = ""
    GRASPS: ClassVar[tuple[Grasp, ...]] = ()
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = ()
    STATE_ATTRS: ClassVar[tuple[str, ...]] = ()
    MAX_STEPS: ClassVar[int] = 400
    SUCCESS_CRITERION: ClassVar[str] = ""

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_steps = int(max_steps or self.MAX_STEPS)
        self._scene = self.scene()
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.NAME, self._scene, self.GRASPS))
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        m = self.model
        self._gripper_body = m.body("gripper").id
        self._target_mocap = m.body_mocapid[m.body("target").id]
        self._grip_site = m.site("grip").id
        self._finger_qadr = [m.jnt_qposadr[m.joint(n).id] for n in ("finger_l", "finger_r")]
        self._grasp = {
            g.body: (g, m.equality(f"grasp_{g.body}").id, m.body(g.body).id, m.site(g.site).id)
            for g in self.GRASPS
        }
        self.grasped: str | None = None
        task_bodies = [i for i in range(1, m.nbody) if i != self._gripper_body
                       and m.body_rootid[i] != self._gripper_body and m.body_mocapid[i] < 0]
        self._task_bodies = np.array(task_bodies, dtype=int)
        self._task_geoms = np.flatnonzero(np.isin(m.geom_bodyid, self._task_bodies))
        self._nominal_mass = m.body_mass.copy()
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_friction = m.geom_friction.copy()
        obs_dim = self.obs_layout()[-1].slice.stop
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
        held = ("grasped", len(cls.GRASPS),
                "1 for the body held (" + ", ".join(g.body for g in cls.GRASPS)
                + "), 0 otherwise; all 0 when nothing is held")
        out, start = [], 0
        for name, size, doc in (*BASE_OBS_FIELDS, held, *cls.OBS_FIELDS):
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

    @property
    def finger_opening(self) -> float:
        """Finger opening, m (0 closed, ``FINGER_OPEN_M`` open)."""
        return float(self.data.qpos[self._finger_qadr[0]])

    @property
    def gripper_mat(self) -> np.ndarray:
        """Gripper rotation matrix (columns = its axes in the world frame)."""
        return self.data.xmat[self._gripper_body].reshape(3, 3).copy()

    def in_gripper(self, v: np.ndarray) -> np.ndarray:
        """World vector ``v`` expressed in the gripper frame."""
        return self.data.xmat[self._gripper_body].reshape(3, 3).T @ np.asarray(v, float)

    def rel_grip(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``point - grip point`` (m) in the world frame and in the gripper frame."""
        rel = np.asarray(point, float) - self.grip_pos
        return rel, self.in_gripper(rel)

    def site_velocity(self, name: str) -> np.ndarray:
        """World-frame linear velocity of site ``name``, m/s."""
        vel = np.empty(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE,
                                 self.model.site(name).id, vel, 0)
        return vel[3:].copy()

    def body_mat(self, name: str) -> np.ndarray:
        return self.data.body(name).xmat.reshape(3, 3).copy()

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
        for _, eq_id, _, _ in self._grasp.values():
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
        before = self._blowups()
        mujoco.mj_step(self.model, d, nstep=SUBSTEPS)
        # mj_step leaves positions and contacts of the state *before* its last substep;
        # observe (and decide, next step) on the state after it
        mujoco.mj_forward(self.model, d)
        self.steps += 1
        if self._blowups() > before:  # MuJoCo has reset the state: the episode is void
            info = {"success": False, "grasped": self.grasped, "unstable": True}
            return self._obs(), 0.0, False, True, info
        reward, success = self._evaluate()
        truncated = self.steps >= self.max_steps
        info = {"success": bool(success), "grasped": self.grasped}
        return self._obs(), float(reward), bool(success), truncated, info

    def _blowups(self) -> int:
        """How many times MuJoCo has reset this simulation after a numerical blow-up."""
        return sum(int(self.data.warning[w].number) for w in _BLOWUPS)

    def _update_grasp(self, close: bool) -> None:
        d = self.data
        if not close:
            if self.grasped is not None:
                d.eq_active[self._grasp[self.grasped][1]] = 0
                self.grasped = None
            return
        if self.grasped is not None or d.qpos[self._finger_qadr[0]] <= FINGER_CATCH_M:
            return
        for body in self._grasp:
            if self.grasp_error(body) is not None:
                self._engage_weld(body)
                self.grasped = body
                return

    def grasp_error(self, body: str) -> tuple[float, float] | None:
        """``(grip point to handle m, orientation error rad)`` if closing now would grasp
        ``body`` (both within tolerance), else None."""
        grasp, _, body_id, site_id = self._grasp[body]
        d = self.data
        dist = float(np.linalg.norm(d.site_xpos[site_id] - self.grip_pos))
        if dist > grasping.POS_TOL_M:
            return None
        ang = grasping.orientation_error(grasp, self.gripper_mat,
                                         d.xmat[body_id].reshape(3, 3))
        return (dist, ang) if ang <= grasping.ANGLE_TOL_RAD else None

    def _engage_weld(self, body: str) -> None:
        """Activate the weld holding ``body`` at the canonical grasp pose nearest to the
        current one (eq_data = anchor 3, relpos 3, relquat 4, torquescale 1; relpos and
        relquat are the body's pose in the gripper frame)."""
        grasp, eq_id, body_id, site_id = self._grasp[body]
        d = self.data
        pos, mat = grasping.canonical_gripper(grasp, self.gripper_mat,
                                              d.xmat[body_id].reshape(3, 3),
                                              d.site_xpos[site_id], GRIP_OFFSET_M)
        self.model.eq_data[eq_id, 0:3] = 0.0
        self.model.eq_data[eq_id, 3:6] = mat.T @ (d.xpos[body_id] - pos)
        self.model.eq_data[eq_id, 6:10] = rot.quat_mul(rot.quat_conj(rot.mat_to_quat(mat)),
                                                       d.xquat[body_id])
        self.model.eq_data[eq_id, 10] = 1.0
        d.eq_active[eq_id] = 1

    # ---- whole state (for restarting an episode from any point) ------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything that determines the rest of the episode: the simulator's full
        physics state, the model parameters a reset randomizes, the grasp, the step count
        and the task's ``STATE_ATTRS``."""
        m, d = self.model, self.data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        phys = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, phys, spec)
        return {"physics": phys, "model": {k: getattr(m, k).copy() for k in _MODEL_STATE},
                "grasped": self.grasped, "steps": self.steps,
                "task": {k: getattr(self, k) for k in self.STATE_ATTRS}}

    def set_state(self, state: dict[str, Any]) -> np.ndarray:
        """Restore a ``get_state()`` snapshot (of this task, any env instance); returns
        the observation of that state."""
        m, d = self.model, self.data
        for k, v in state["model"].items():
            getattr(m, k)[:] = v
        for k, v in state["task"].items():
            setattr(self, k, v)
        mujoco.mj_setState(m, d, state["physics"], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_setConst(m, self._scratch)
        mujoco.mj_forward(m, d)
        self.grasped, self.steps = state["grasped"], int(state["steps"])
        return self._obs()

    def _obs(self) -> np.ndarray:
        d = self.data
        r = d.xmat[self._gripper_body].reshape(3, 3)
        held = [1.0 if g.body == self.grasped else 0.0 for g in self.GRASPS]
        return np.concatenate([self.gripper_pos, r[:, 0], r[:, 2],
                               d.qpos[self._finger_qadr], held, self._features()])

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
