"""``hatch`` -- Constrained Hatch Actuation (L-SDPPO task I) in the zero-g cabin.

Task: grasp the latch lever of a hatch mounted on a cabin wall, turn the latch past its
unlock angle, then, still holding the lever, swing the hatch open past 60 deg about its
hinge. The hand must follow the hinge arc (and the latch's own arc before that): the
handle is kinematically constrained, so pulling in a straight line fights the hinge.

Scene (SI units, cabin frame, z up; no gravity, no air damping):

- ``hatch_frame``: a fixed body whose origin lies on the hinge line, nominally at
  (0.33, -0.2, 0.15) m, axes aligned with the cabin frame. It carries a wall panel
  (0.02 x 0.6 x 0.5 m box behind the hatch, collides with the gripper) and a decorative
  frame around the opening. The hatch opens towards -x (into the cabin).
- ``hatch``: the door, a 0.02 x 0.40 x 0.30 m plate, nominal mass 2.5 kg, on hinge
  ``hatch_hinge`` about the frame's z axis through the frame origin (its left edge). Angle
  0 = closed, positive = open (towards the cabin); range [0, 110] deg.
- ``latch``: a lever on the door's cabin-side face (pivot 0.32 m from the hinge line, at
  mid height), nominal mass 0.2 kg, on hinge ``latch_hinge`` about the door normal. Its
  0.07 m arm points down at angle 0 (locked) and turns towards the door's free edge;
  range [0, 90] deg. A torsion return spring (``springref = 0``) pulls it back to 0. A
  knob at the arm's end carries the handle site ``latch_handle`` (0.035 m out from the
  door face).
- The free-flying gripper (base) starts near (0, 0, 0.4) m, pointing down.

Interlock (a lock toggled each control step, not a physical bolt): the joint equality
``hatch_lock`` pins ``hatch_hinge`` at a fixed angle. Before every control step
(``HatchEnv.step``) the bolt state is updated from the current state:

- latch angle >= ``UNLOCK_RAD`` (60 deg): the bolt is withdrawn (lock inactive);
- latch angle < 60 deg and the lock already engaged: it stays engaged (so a policy
  yanking a locked hatch cannot pull it free through constraint compliance);
- latch angle < 60 deg, lock not engaged and hatch angle < ``BOLT_ENGAGE_RAD`` (1 deg): the
  bolt drops in and pins the hatch at its current angle (a released latch springs back and
  re-locks a hatch that is (nearly) closed; an open hatch with a released latch stays free).

The lock is a soft constraint (``solref = 5 ms``): a locked hatch yanked at the gripper's
full command gives by at most ~2 deg and springs back.

A door seal (gasket) pushes a closed hatch open: a one-sided torsion spring
``tau = k_seal * max(0, 3 deg - angle)`` on the hinge (N m), evaluated once per control
step into ``qfrc_applied`` (the lock absorbs it while engaged). Once unlocked and not held,
the hatch pops open at up to ~0.3 rad/s and drifts a few degrees before hinge friction
and damping stop it.

Success criterion: latch angle >= 60 deg (unlocked) AND hatch angle > 60 deg (1.0472 rad),
both read from the joint positions, checked every step; the episode ends on success.

Shaped reward (dense, staged, every step; distances in m, angles in rad)::

    reach  = 1 - tanh(10 * |grip - latch_handle|)     # grip point to the handle site
    held   = 1 if the latch is grasped else 0
    unlock = clip(latch_angle / UNLOCK_RAD, 0, 1)
    open   = clip(hatch_angle / OPEN_RAD, 0, 1)       # OPEN_RAD = 60 deg
    reward = 0.2 * reach + 0.1 * held + 0.3 * unlock + 0.4 * open + 1.0 * success

so reward is in [0, 2]: reaching, holding, turning the latch and swinging the hatch each
add a stage, and the success step pays 1 extra.

Randomization per reset (``rng`` = ``self.np_random``):

- base class: task body masses (hatch, latch) x U(0.7, 1.3) (inertia alike), geom sliding
  friction x U(0.7, 1.3), gripper start +- 0.03 m per axis;
- frame pose: hinge-line origin + U(-0.03, 0.03) m per axis; orientation: yaw about z
  U(-8, 8) deg, then a tilt by the rotation vector (U(-3, 3), U(-3, 3), 0) deg (world
  frame); the base recomputes derived constants (``mj_setConst``) after this;
- hinge: damping U(0.02, 0.2) N m s/rad, dry friction (``frictionloss``) U(0.02, 0.1) N m;
- latch: return spring stiffness U(0.3, 0.8) N m/rad, dry friction U(0.01, 0.05) N m;
  initial angle U(0, 20) deg (the spring may pull it back before the hand arrives);
- seal: stiffness k_seal U(2, 6) N m/rad (the pop-open drift above);
- the hatch starts closed (angle 0) and locked, at rest.
"""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.grasp import Grasp
from hardware.sim.scene import TaskScene

# geometry (m) and masses (kg)
FRAME_POS_M = np.array([0.33, -0.2, 0.15])
DOOR_HALF_M = (0.01, 0.2, 0.15)  # half thickness (x), half width (y), half height (z)
DOOR_MASS_KG = 2.5
LATCH_PIVOT_Y_M = 0.32  # pivot distance from the hinge line, along the door
LATCH_ARM_M = 0.07
LATCH_MASS_KG = 0.2
HANDLE_OUT_M = 0.035  # handle site distance in front of the door face

# angles (rad)
UNLOCK_RAD = np.deg2rad(60.0)
OPEN_RAD = np.deg2rad(60.0)
BOLT_ENGAGE_RAD = np.deg2rad(1.0)
HATCH_RANGE_RAD = np.deg2rad(110.0)
LATCH_RANGE_RAD = np.deg2rad(90.0)
SEAL_RAD = np.deg2rad(3.0)

# randomization ranges
FRAME_POS_JITTER_M = 0.03
FRAME_YAW_RAD = np.deg2rad(8.0)
FRAME_TILT_RAD = np.deg2rad(3.0)
HINGE_DAMPING = (0.02, 0.2)  # N m s / rad
HINGE_FRICTION = (0.02, 0.1)  # N m
LATCH_STIFFNESS = (0.3, 0.8)  # N m / rad
LATCH_FRICTION = (0.01, 0.05)  # N m
LATCH_INIT_RAD = (0.0, np.deg2rad(20.0))
SEAL_STIFFNESS = (2.0, 6.0)  # N m / rad


class HatchEnv(CabinEnv):
    """Unlatch and swing open a hinged hatch (see the module docstring)."""

    NAME: ClassVar[str] = "hatch"
    MAX_STEPS: ClassVar[int] = 200
    SUCCESS_CRITERION: ClassVar[str] = (
        "The latch is unlocked (latch_hinge angle >= 60 deg) and the hatch is swung open "
        "past 60 deg (hatch_hinge angle > 60 deg from closed), both at the same step."
    )
    # the knob on the lever's end, approached along the door's outward normal (latch -x)
    GRASPS: ClassVar[tuple[Grasp, ...]] = (Grasp("latch", "latch_handle", axis=(-1.0, 0.0, 0.0)),)
    STATE_ATTRS: ClassVar[tuple[str, ...]] = ("seal_stiffness",)
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = (
        ("hinge_pos", 3, "a point on the hatch hinge line (frame origin), m, world frame"),
        ("hinge_axis", 3, "hatch hinge axis (positive angle opens), unit, world frame"),
        ("hatch_angle", 1, "hatch opening angle, rad (0 closed, 1.92 max)"),
        ("hatch_angvel", 1, "hatch opening rate, rad/s"),
        ("latch_angle", 1, "latch lever angle, rad (0 locked, unlocked >= 1.047, 1.571 max)"),
        ("latch_angvel", 1, "latch lever rate, rad/s"),
        ("handle_pos", 3, "latch handle site (grasp point), m, world frame"),
        ("locked", 1, "1 if the bolt interlock currently pins the hatch, else 0"),
        ("handle_rel", 3, "latch handle site minus the grip point, m, world frame"),
        ("handle_rel_g", 3, "latch handle site minus the grip point, m, gripper frame"),
        ("door_normal_g", 3, "door's outward normal (the knob's grasp axis), unit, gripper frame"),
        ("latch_arm_g", 3, "lever arm direction (pivot -> knob), unit, gripper frame"),
    )

    def scene(self) -> TaskScene:
        """Cabin bodies: the fixed frame with wall panel, the hinged hatch, the latch."""
        dx, dy, dz = DOOR_HALF_M
        arm, out = LATCH_ARM_M, HANDLE_OUT_M
        bodies = f"""
    <body name="hatch_frame" pos="{FRAME_POS_M[0]:g} {FRAME_POS_M[1]:g} {FRAME_POS_M[2]:g}">
      <geom name="wall" type="box" size="0.01 0.3 0.25" pos="0.011 {dy:g} 0" rgba=".7 .72 .75 1"/>
      <geom class="decor" type="box" size="0.004 0.015 {dz + 0.015:g}" pos="-0.003 -0.015 0"
            material="metal"/>
      <geom class="decor" type="box" size="0.004 0.015 {dz + 0.015:g}"
            pos="-0.003 {2 * dy + 0.015:g} 0" material="metal"/>
      <geom class="decor" type="box" size="0.004 {dy:g} 0.015" pos="-0.003 {dy:g} {dz + 0.015:g}"
            material="metal"/>
      <geom class="decor" type="box" size="0.004 {dy:g} 0.015" pos="-0.003 {dy:g} {-dz - 0.015:g}"
            material="metal"/>
      <body name="hatch">
        <joint name="hatch_hinge" type="hinge" axis="0 0 1" range="0 {HATCH_RANGE_RAD:.6f}"
               armature="0.002"/>
        <geom name="hatch" type="box" size="{dx:g} {dy:g} {dz:g}" pos="{-dx:g} {dy:g} 0"
              mass="{DOOR_MASS_KG:g}" material="metal"/>
        <geom class="decor" type="cylinder" size="0.008 {dz:g}" pos="-0.008 0 0"
              material="gripper"/>
        <body name="latch" pos="{-2 * dx:g} {LATCH_PIVOT_Y_M:g} 0">
          <joint name="latch_hinge" type="hinge" axis="1 0 0" range="0 {LATCH_RANGE_RAD:.6f}"
                 springref="0" stiffness="0.5" damping="0.005" armature="0.0005"/>
          <geom name="latch_hub" type="cylinder" size="0.014 0.005" pos="-0.005 0 0"
                zaxis="1 0 0" mass="{0.3 * LATCH_MASS_KG:g}" material="accent"/>
          <geom name="latch_arm" type="box" size="0.004 0.008 {arm / 2:g}"
                pos="-0.006 0 {-arm / 2:g}" mass="{0.4 * LATCH_MASS_KG:g}" material="accent"/>
          <geom name="latch_knob" type="cylinder" size="0.009 {out / 2 + 0.005:g}"
                pos="{-out / 2 - 0.005:g} 0 {-arm:g}" zaxis="1 0 0"
                mass="{0.3 * LATCH_MASS_KG:g}" material="accent"/>
          <site name="latch_handle" pos="{-out:g} 0 {-arm:g}" size="0.006" rgba="1 1 0 0.6"/>
        </body>
      </body>
    </body>"""
        equality = ('    <joint name="hatch_lock" joint1="hatch_hinge" polycoef="0 0 0 0 0" '
                    'solref="0.005 1"/>')
        return TaskScene(
            bodies=bodies,
            equality=equality,
            gripper_pos=(0.0, 0.0, 0.4),
            camera_pos=(-0.75, -0.85, 0.7),
            camera_target=(0.2, 0.0, 0.15),
        )

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        super().__init__(render_mode=render_mode, max_steps=max_steps)
        m = self.model
        self._frame_body = m.body("hatch_frame").id
        self._frame_pos0 = m.body_pos[self._frame_body].copy()
        self._frame_quat0 = m.body_quat[self._frame_body].copy()
        hinge, latch = m.joint("hatch_hinge"), m.joint("latch_hinge")
        self._hinge_jnt, self._latch_jnt = hinge.id, latch.id
        self._hinge_q, self._latch_q = int(hinge.qposadr[0]), int(latch.qposadr[0])
        self._hinge_v, self._latch_v = int(hinge.dofadr[0]), int(latch.dofadr[0])
        self._lock_eq = m.equality("hatch_lock").id
        self._handle_site = m.site("latch_handle").id
        self.seal_stiffness = float(np.mean(SEAL_STIFFNESS))

    # ---- state -------------------------------------------------------------------------
    @property
    def hatch_angle(self) -> float:
        """Hatch opening angle, rad (0 = closed)."""
        return float(self.data.qpos[self._hinge_q])

    @property
    def latch_angle(self) -> float:
        """Latch lever angle, rad (0 = locked position)."""
        return float(self.data.qpos[self._latch_q])

    @property
    def locked(self) -> bool:
        """Whether the bolt interlock currently pins the hatch."""
        return bool(self.data.eq_active[self._lock_eq])

    def hinge_axis(self, joint: str = "hatch_hinge") -> tuple[np.ndarray, np.ndarray]:
        """``(point on the axis m, unit axis)`` of ``hatch_hinge`` or ``latch_hinge``,
        world frame (valid after ``mj_forward``/a step)."""
        j = self._hinge_jnt if joint == "hatch_hinge" else self.model.joint(joint).id
        return self.data.xanchor[j].copy(), self.data.xaxis[j].copy()

    # ---- dynamics hooks ---------------------------------------------------------------
    def _update_interlock(self) -> None:
        """Bolt and seal from the current state (rules in the module docstring)."""
        d = self.data
        theta, phi = self.hatch_angle, self.latch_angle
        if phi >= UNLOCK_RAD:
            d.eq_active[self._lock_eq] = 0
        elif not d.eq_active[self._lock_eq] and theta < BOLT_ENGAGE_RAD:
            self.model.eq_data[self._lock_eq, 0] = max(theta, 0.0)
            d.eq_active[self._lock_eq] = 1
        d.qfrc_applied[self._hinge_v] = self.seal_stiffness * max(0.0, SEAL_RAD - theta)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Update the interlock and the seal, then the base's control step."""
        self._update_interlock()
        return super().step(action)

    # ---- randomization ----------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        """Frame pose, joint friction/damping/stiffness, seal, initial latch angle."""
        m, d = self.model, self.data
        m.body_pos[self._frame_body] = self._frame_pos0 + rng.uniform(
            -FRAME_POS_JITTER_M, FRAME_POS_JITTER_M, 3)
        yaw = rot.axisangle_to_quat(np.array([0.0, 0.0, rng.uniform(-FRAME_YAW_RAD,
                                                                      FRAME_YAW_RAD)]))
        tilt = rot.axisangle_to_quat(np.array([rng.uniform(-FRAME_TILT_RAD, FRAME_TILT_RAD),
                                               rng.uniform(-FRAME_TILT_RAD, FRAME_TILT_RAD),
                                               0.0]))
        m.body_quat[self._frame_body] = rot.quat_mul(tilt, rot.quat_mul(yaw, self._frame_quat0))
        m.dof_damping[self._hinge_v] = rng.uniform(*HINGE_DAMPING)
        m.dof_frictionloss[self._hinge_v] = rng.uniform(*HINGE_FRICTION)
        m.jnt_stiffness[self._latch_jnt] = rng.uniform(*LATCH_STIFFNESS)
        m.dof_frictionloss[self._latch_v] = rng.uniform(*LATCH_FRICTION)
        self.seal_stiffness = float(rng.uniform(*SEAL_STIFFNESS))
        d.qpos[self._hinge_q] = 0.0
        d.qpos[self._latch_q] = rng.uniform(*LATCH_INIT_RAD)
        d.qvel[[self._hinge_v, self._latch_v]] = 0.0
        m.eq_data[self._lock_eq, 0] = 0.0
        d.eq_active[self._lock_eq] = 1
        mujoco.mj_forward(m, d)
        self._update_interlock()

    # ---- observation and evaluation ---------------------------------------------------
    def _features(self) -> np.ndarray:
        d = self.data
        r_latch = self.body_mat("latch")
        handle = d.site_xpos[self._handle_site]
        return np.concatenate([
            d.xanchor[self._hinge_jnt], d.xaxis[self._hinge_jnt],
            [d.qpos[self._hinge_q], d.qvel[self._hinge_v],
             d.qpos[self._latch_q], d.qvel[self._latch_v]],
            handle, [float(d.eq_active[self._lock_eq])],
            *self.rel_grip(handle),
            self.in_gripper(-r_latch[:, 0]), self.in_gripper(-r_latch[:, 2]),
        ])

    def _evaluate(self) -> tuple[float, bool]:
        theta, phi = self.hatch_angle, self.latch_angle
        success = bool(phi >= UNLOCK_RAD and theta > OPEN_RAD)
        dist = float(np.linalg.norm(self.grip_pos - self.data.site_xpos[self._handle_site]))
        reach = 1.0 - np.tanh(10.0 * dist)
        held = 1.0 if self.grasped == "latch" else 0.0
        unlock = float(np.clip(phi / UNLOCK_RAD, 0.0, 1.0))
        opened = float(np.clip(theta / OPEN_RAD, 0.0, 1.0))
        reward = 0.2 * reach + 0.1 * held + 0.3 * unlock + 0.4 * opened + float(success)
        return float(reward), success
