"""``stow`` -- Dynamic Tumbling Target Stowing (L-SDPPO task II) in the zero-g cabin.

Task: catch a payload that drifts and tumbles with a random initial twist, by its handle,
arrest its tumble, carry it into an open locker bay fixed to the cabin floor and let go of
it there, at rest.

Scene (SI units, cabin frame, z up; no gravity, no air damping):

- ``payload``: a free-flying box (a stowage container), 0.12 x 0.10 x 0.08 m, nominal mass
  1.5 kg (1.05-1.95 kg after the base's mass scaling), centre of mass at its centre. A
  U-shaped bar handle (radius 7 mm) spans its 0.12 x 0.10 m top face (body +z side); the
  handle site ``payload_handle`` sits on the bar, 0.06 m along the body z axis from the
  centre (0.02 m above the face). The handle normal is the body z axis.
- ``bay``: an open-topped locker bay, fixed, standing on the cabin floor (z = -0.3 m):
  a 1 cm floor plate and four 1 cm walls around an interior of 0.26 x 0.26 m (x, y) and
  0.16 m depth, interior spanning x in [0.17, 0.43], y in [-0.43, -0.17],
  z in [-0.29, -0.13] m; the opening faces +z. Site ``bay_center`` marks the interior
  centre (0.30, -0.30, -0.21) m.
- The free-flying gripper (base) starts near (0, 0.1, 0.35) m, pointing down.

Grasping is the base's weld: closing the gripper with its grip point within 25 mm of
``payload_handle`` welds the payload to the gripper at their current relative pose;
opening releases it. Fingers are visual; palm, payload, handle bar and bay walls collide.

Success criterion (``c`` the payload centre, ``v`` its linear velocity, ``w`` its angular
velocity, all world frame): the payload is *not* grasped, ``c`` lies in the stowage volume
(|c_x - 0.30| < 0.13 m, |c_y + 0.30| < 0.13 m, -0.29 m < c_z < -0.17 m, i.e. inside the
bay's interior with the centre at least one payload half-height, 0.04 m, below the rim
plane z = -0.13 m), ``|v| < 0.02 m/s`` and ``|w| < 0.5 rad/s``. The initial drift speed is
at least 0.03 m/s, so a payload left alone never counts as stowed just by passing through.

Shaped reward (dense, staged, every step; distances in m, speeds in m/s and rad/s)::

    held    = 1 if the payload is grasped else 0
    stored  = 1 if not held and c is in the stowage volume else 0
    secured = max(held, stored)
    reach   = 1 if secured else 1 - tanh(10 * |grip - handle|)
    calm    = 1 - tanh(2 * |w|)
    place   = 1 - tanh(5 * |c - bay_target|)     # bay_target = (0.30, -0.30, -0.235)
    still   = 1 - tanh(20 * |v|)
    reward  = 0.2 * reach + 0.2 * secured + 0.1 * secured * calm + 0.3 * place
              + 0.2 * stored * still + 1.0 * success

so reward is in [0, 2]: reaching the handle, holding the payload, calming its tumble,
bringing it to the bay and leaving it there at rest each add a stage (holding it in the
bay is worth at most 0.8, leaving it there at rest 1.0), and the success step pays 1 extra.

Randomization per reset (``rng`` = ``self.np_random``):

- base class: task body masses x U(0.7, 1.3) (inertia scaled alike), geom sliding
  friction x U(0.7, 1.3), gripper start +- 0.03 m per axis;
- payload centre: the nominal gripper start (0, 0.1, 0.35) m plus U(0.3, 0.5) m in a
  uniformly random direction, redrawn until the centre has z >= 0.12 m and lies within
  0.75 m of the origin; orientation uniformly random (any face, any twist);
- drift: linear velocity of speed U(0.03, 0.08) m/s in a uniformly random direction;
- tumble: angular velocity of magnitude U(0.2, 1.0) rad/s about a uniformly random axis
  (world frame).

The payload has only a free joint and the bay is static, so there is no joint friction or
stiffness to randomize.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.grasp import Grasp
from hardware.sim.scene import TaskScene

PAYLOAD_HALF_M = np.array([0.06, 0.05, 0.04])  # half extents x, y, z
PAYLOAD_MASS_KG = 1.5
HANDLE_OFFSET_M = 0.06  # handle site from the payload centre, along the body z axis
HANDLE_RADIUS_M = 0.007

BAY_CENTER_M = np.array([0.30, -0.30, -0.21])  # interior centre
BAY_HALF_M = np.array([0.13, 0.13, 0.08])  # interior half extents
BAY_WALL_M = 0.01
BAY_RIM_Z_M = BAY_CENTER_M[2] + BAY_HALF_M[2]  # -0.13
BAY_FLOOR_Z_M = BAY_CENTER_M[2] - BAY_HALF_M[2]  # -0.29
STOW_TOP_Z_M = BAY_RIM_Z_M - PAYLOAD_HALF_M[2]  # -0.17: centre at least this low
BAY_TARGET_M = np.array([BAY_CENTER_M[0], BAY_CENTER_M[1],
                         BAY_FLOOR_Z_M + PAYLOAD_HALF_M[2] + 0.015])  # resting spot
STOW_SPEED_MPS = 0.02
STOW_SPIN_RADPS = 0.5

GRIPPER_START_M = (0.0, 0.1, 0.35)
START_DIST_M = (0.3, 0.5)
START_MIN_Z_M = 0.12
START_MAX_RADIUS_M = 0.75
DRIFT_SPEED_MPS = (0.03, 0.08)
TUMBLE_RADPS = (0.2, 1.0)


class StowEnv(CabinEnv):
    """Catch a drifting, tumbling payload and stow it in a locker bay (see the module
    docstring)."""

    NAME: ClassVar[str] = "stow"
    MAX_STEPS: ClassVar[int] = 300
    SUCCESS_CRITERION: ClassVar[str] = (
        "The payload is not grasped, its centre lies inside the bay's interior at least "
        "0.04 m below the rim plane (|x - 0.30| < 0.13 m, |y + 0.30| < 0.13 m, "
        "-0.29 m < z < -0.17 m, world frame), its linear speed is below 0.02 m/s and its "
        "angular speed below 0.5 rad/s."
    )
    # the U bar on the +z face, along the body x axis, approached along the body z axis
    GRASPS: ClassVar[tuple[Grasp, ...]] = (
        Grasp("payload", "payload_handle", axis=(0.0, 0.0, 1.0), bar=(1.0, 0.0, 0.0)),)
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = (
        ("payload_pos", 3, "payload centre (= centre of mass), m, world frame"),
        ("payload_rot6", 6, "payload x axis (along the handle bar) and z axis (handle "
                            "normal), unit, world frame"),
        ("payload_linvel", 3, "payload centre velocity, m/s, world frame"),
        ("payload_angvel", 3, "payload angular velocity, rad/s, world frame"),
        ("payload_rel", 3, "payload centre minus the gripper's grip point, m, world frame"),
        ("handle_rel", 3, "payload handle site minus the grip point, m, world frame"),
        ("handle_rel_g", 3, "payload handle site minus the grip point, m, gripper frame"),
        ("handle_vel", 3, "velocity of that handle site, m/s, world frame"),
        ("handle_normal_g", 3, "handle normal (payload z axis), unit, gripper frame"),
        ("handle_bar_g", 3, "handle bar direction (payload x axis), unit, gripper frame"),
        ("bay_rel", 3, "bay interior centre minus the payload centre, m, world frame"),
        ("payload_rel_g", 3, "payload_rel in the gripper frame, m"),
        ("payload_linvel_g", 3, "payload_linvel in the gripper frame, m/s"),
        ("payload_angvel_g", 3, "payload_angvel in the gripper frame, rad/s"),
        ("handle_vel_g", 3, "handle_vel in the gripper frame, m/s"),
        ("bay_rel_g", 3, "bay_rel in the gripper frame, m"),
    )

    def scene(self) -> TaskScene:
        """Cabin bodies: the free-flying payload and the static locker bay."""
        hx, hy, hz = PAYLOAD_HALF_M
        ho, hr = HANDLE_OFFSET_M, HANDLE_RADIUS_M
        bx, by, bz = BAY_HALF_M
        w = BAY_WALL_M / 2
        # Payload inertia: solid box of the nominal mass, I_xx = m (b^2 + c^2) / 12 (full sizes).
        ixx = PAYLOAD_MASS_KG * ((2 * hy) ** 2 + (2 * hz) ** 2) / 12
        iyy = PAYLOAD_MASS_KG * ((2 * hx) ** 2 + (2 * hz) ** 2) / 12
        izz = PAYLOAD_MASS_KG * ((2 * hx) ** 2 + (2 * hy) ** 2) / 12
        c = BAY_CENTER_M
        bodies = f"""
    <body name="payload" pos="0 0.4 0.4">
      <freejoint name="payload"/>
      <inertial pos="0 0 0" mass="{PAYLOAD_MASS_KG}" diaginertia="{ixx:.6g} {iyy:.6g} {izz:.6g}"/>
      <geom name="payload" type="box" size="{hx} {hy} {hz}" material="accent" mass="0"/>
      <geom name="payload_handle" type="capsule" size="{hr}"
            fromto="{-0.7 * hx:g} 0 {ho} {0.7 * hx:g} 0 {ho}" material="metal" mass="0"/>
      <geom class="decor" type="cylinder" size="0.005" mass="0"
            fromto="{-0.7 * hx:g} 0 {hz} {-0.7 * hx:g} 0 {ho}" material="metal"/>
      <geom class="decor" type="cylinder" size="0.005" mass="0"
            fromto="{0.7 * hx:g} 0 {hz} {0.7 * hx:g} 0 {ho}" material="metal"/>
      <site name="payload_handle" pos="0 0 {ho}" size="0.006" rgba="1 1 0 0.6"/>
    </body>
    <body name="bay" pos="{c[0]:g} {c[1]:g} {c[2]:g}">
      <geom name="bay_floor" type="box" size="{bx + 2 * w:g} {by + 2 * w:g} {w:g}"
            pos="0 0 {-bz - w:g}" material="metal"/>
      <geom name="bay_wall_px" type="box" size="{w:g} {by + 2 * w:g} {bz:g}"
            pos="{bx + w:g} 0 0" material="metal"/>
      <geom name="bay_wall_nx" type="box" size="{w:g} {by + 2 * w:g} {bz:g}"
            pos="{-bx - w:g} 0 0" material="metal"/>
      <geom name="bay_wall_py" type="box" size="{bx:g} {w:g} {bz:g}"
            pos="0 {by + w:g} 0" material="metal"/>
      <geom name="bay_wall_ny" type="box" size="{bx:g} {w:g} {bz:g}"
            pos="0 {-by - w:g} 0" material="metal"/>
      <site name="bay_center" pos="0 0 0" size="0.008" rgba="0 0 1 0.4"/>
    </body>"""
        return TaskScene(
            bodies=bodies,
            gripper_pos=GRIPPER_START_M,
            camera_pos=(-0.8, -1.65, 1.0),
            camera_target=(0.1, 0.05, 0.12),
        )

    # ---- randomization ----------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        """Payload pose, drift and tumble (ranges in the module docstring)."""
        start = np.asarray(GRIPPER_START_M)
        while True:
            pos = start + rot.random_unit(rng) * rng.uniform(*START_DIST_M)
            if pos[2] >= START_MIN_Z_M and np.linalg.norm(pos) <= START_MAX_RADIUS_M:
                break
        quat = rot.random_quat(rng)
        linvel = rot.random_unit(rng) * rng.uniform(*DRIFT_SPEED_MPS)
        angvel = rot.random_unit(rng) * rng.uniform(*TUMBLE_RADPS)
        self.set_free_body("payload", pos, quat, linvel, angvel)

    # ---- task state ---------------------------------------------------------------------
    def payload_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """``(linear m/s, angular rad/s)`` of the payload, world frame (linear: centre)."""
        v = self.joint_qvel("payload")
        return v[:3].copy(), self.data.body("payload").xmat.reshape(3, 3) @ v[3:6]

    def payload_axis(self) -> np.ndarray:
        """Handle normal (payload body z axis), unit vector, world frame."""
        return self.data.body("payload").xmat.reshape(3, 3)[:, 2].copy()

    def in_stow_volume(self, pos: np.ndarray | None = None) -> bool:
        """Whether ``pos`` (default: the payload centre, m, world) is in the stowage
        volume: inside the bay interior and at least 0.04 m below the rim plane."""
        c = self.body_pos("payload") if pos is None else np.asarray(pos)
        d = np.abs(c[:2] - BAY_CENTER_M[:2])
        return bool(np.all(d < BAY_HALF_M[:2]) and BAY_FLOOR_Z_M < c[2] < STOW_TOP_Z_M)

    def _features(self) -> np.ndarray:
        q = self.joint_qpos("payload")
        v, w = self.payload_velocity()
        c = q[:3]
        r = self.body_mat("payload")
        rel, v_h, bay = c - self.grip_pos, self.site_velocity("payload_handle"), BAY_CENTER_M - c
        return np.concatenate([
            c, r[:, 0], r[:, 2], v, w, rel,
            *self.rel_grip(self.site_pos("payload_handle")), v_h,
            self.in_gripper(r[:, 2]), self.in_gripper(r[:, 0]), bay,
            *(self.in_gripper(x) for x in (rel, v, w, v_h, bay)),
        ])

    def _evaluate(self) -> tuple[float, bool]:
        c = self.body_pos("payload")
        v, w = self.payload_velocity()
        speed, spin = float(np.linalg.norm(v)), float(np.linalg.norm(w))
        held = 1.0 if self.grasped == "payload" else 0.0
        stored = 1.0 if (held == 0.0 and self.in_stow_volume(c)) else 0.0
        success = bool(stored and speed < STOW_SPEED_MPS and spin < STOW_SPIN_RADPS)
        secured = max(held, stored)
        if secured:
            reach = 1.0
        else:
            reach = 1.0 - np.tanh(10.0 * np.linalg.norm(self.grip_pos
                                                        - self.site_pos("payload_handle")))
        calm = 1.0 - np.tanh(2.0 * spin)
        place = 1.0 - np.tanh(5.0 * np.linalg.norm(c - BAY_TARGET_M))
        still = 1.0 - np.tanh(20.0 * speed)
        reward = (0.2 * reach + 0.2 * secured + 0.1 * secured * calm + 0.3 * place
                  + 0.2 * stored * still + 1.0 * success)
        return float(reward), success
