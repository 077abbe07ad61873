"""``cap`` -- Precision Container Capping (L-SDPPO task III) in the zero-g cabin.

Task: grasp a free-floating lid by its handle and seat it on the open rim of a
free-floating cylindrical container, within a tight position and angle tolerance, while
both drift and tumble.

Scene (SI units, cabin frame, z up; no gravity, no air damping):

- ``container``: a free-flying cylindrical canister, radius 0.06 m, height 0.16 m, nominal
  mass 2.0 kg (so 1.4-2.6 kg after the base's mass scaling). Its axis is the body z
  axis; the rim plane is its top face, centre site ``rim`` (0.08 m along +z from the
  body centre). Modelled as a solid cylinder (the contents); a decor disc marks the
  opening.
- ``lid``: a free-flying disc, radius 0.06 m, thickness 0.016 m, nominal mass 0.25 kg
  (0.175-0.325 kg after scaling), with a knob handle (radius 0.012 m, height 0.024 m) on
  its top face; the handle site ``lid_handle`` is the knob centre, the seat site
  ``lid_seat`` is the centre of the disc's underside. The lid axis is its body z axis
  (knob side).
- The free-flying gripper (base) starts 0.5 m above the origin, pointing down.

Seating is physical *and* geometric: lid and container collide (the lid cannot pass
through the rim, and a clumsy approach shoves the container away, since it floats
freely), and success needs the lid to be resting on the rim (in contact) within the
tolerances below. Nothing holds the lid on a seated container (no latch, no friction
fit): the criterion is checked on the current state, gripper holding the lid or not, and
the episode ends on success.

Success criterion (with ``a`` the container axis, ``r`` the rim centre, ``s`` the lid seat
point, ``n`` the lid axis, all world frame): the lid geom touches the container geom
(at least one MuJoCo contact between them), axial offset ``e_ax = (s - r) . a`` with
``|e_ax| < 3 mm``, radial offset ``e_rad = |(s - r) - e_ax a| < 5 mm`` and tilt
``theta = angle(n, a) < 5 deg``.

Shaped reward (dense, staged, every step; distances in m, angles in rad)::

    reach  = 1 - tanh(10 * |grip - handle|)          # gripper grip point to lid handle
    held   = 1 if the lid is grasped else 0
    align  = (1 - tanh(10 * e_rad)) * (1 - tanh(2 * theta))
    insert = 1 - tanh(10 * |e_ax|)
    reward = 0.2 * reach + 0.2 * held + 0.3 * align + 0.3 * align * insert + 1.0 * success

so reward is in [0, 2]; reaching, holding, lining the lid up with the axis and closing
the axial gap each add a stage, and the success step pays 1 extra.

Randomization per reset (``rng`` = ``self.np_random``):

- base class: task body masses x U(0.7, 1.3) (inertia scaled alike), geom sliding
  friction x U(0.7, 1.3), gripper start +- 0.03 m per axis;
- container centre: (0.15, 0, 0.15) m + U(-0.05, 0.05) per axis; axis tilted from +z by
  U(0, 30) deg towards a uniform azimuth, spin about its axis U(0, 2 pi);
- lid centre: (-0.15, 0, 0.35) m + U(-0.05, 0.05) per axis; axis tilted from +z by
  U(0, 30) deg, uniform azimuth and spin;
- drift: each body's linear velocity has a speed of U(0.005, 0.03) m/s in a uniformly
  random direction;
- tumble: each body's angular velocity has a magnitude of U(0, 0.2) rad/s about a
  uniformly random axis (world frame).

No joints other than the free joints (so no joint friction or stiffness to randomize).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.grasp import Grasp
from hardware.sim.scene import TaskScene

CONTAINER_RADIUS_M = 0.06
CONTAINER_HALF_HEIGHT_M = 0.08
LID_RADIUS_M = 0.06
LID_HALF_THICKNESS_M = 0.008
HANDLE_RADIUS_M = 0.012
HANDLE_HALF_HEIGHT_M = 0.012

AXIAL_TOL_M = 0.003
RADIAL_TOL_M = 0.005
ANGLE_TOL_RAD = np.deg2rad(5.0)

CONTAINER_CENTER_M = np.array([0.15, 0.0, 0.15])
LID_CENTER_M = np.array([-0.15, 0.0, 0.35])
POS_JITTER_M = 0.05
MAX_TILT_RAD = np.deg2rad(30.0)
DRIFT_SPEED_MPS = (0.005, 0.03)
MAX_TUMBLE_RADPS = 0.2


def _tilted_quat(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """Random orientation: body z tilted from world +z by U(0, max_tilt) rad towards a
    uniform azimuth, with a uniform spin about the body z axis (wxyz)."""
    spin = rot.axisangle_to_quat(np.array([0.0, 0.0, rng.uniform(0.0, 2.0 * np.pi)]))
    az = rng.uniform(0.0, 2.0 * np.pi)
    tilt_axis = np.array([np.cos(az), np.sin(az), 0.0])
    tilt = rot.axisangle_to_quat(tilt_axis * rng.uniform(0.0, max_tilt))
    return rot.quat_mul(tilt, spin)


class CapEnv(CabinEnv):
    """Seat a lid on a drifting, tumbling container (see the module docstring)."""

    NAME: ClassVar[str] = "cap"
    MAX_STEPS: ClassVar[int] = 200
    SUCCESS_CRITERION: ClassVar[str] = (
        "The lid touches the container, its seat point (centre of its underside) lies within "
        "3 mm of the container's rim plane along the container axis (|axial| < 3 mm) and "
        "within 5 mm of that axis (radial < 5 mm), and the lid axis is within 5 deg of the "
        "container axis, whether or not the gripper still holds the lid."
    )
    # the knob on the lid's top face, approached along the lid axis
    GRASPS: ClassVar[tuple[Grasp, ...]] = (Grasp("lid", "lid_handle", axis=(0.0, 0.0, 1.0)),)
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = (
        ("rim_pos", 3, "container rim centre (top face centre), m, world frame"),
        ("container_axis", 3, "container axis (rim normal, pointing out), unit, world frame"),
        ("container_linvel", 3, "container velocity (centre = centre of mass), m/s, world frame"),
        ("container_angvel", 3, "container angular velocity, rad/s, world frame"),
        ("lid_seat_pos", 3, "lid seat point (centre of the lid underside), m, world frame"),
        ("lid_axis", 3, "lid axis (from underside towards the handle), unit, world frame"),
        ("lid_linvel", 3, "velocity of the lid disc centre (body origin), m/s, world frame"),
        ("lid_angvel", 3, "lid angular velocity, rad/s, world frame"),
        ("seat_error", 3, "lid seat vs rim: axial offset along the container axis (m, "
                          "+ = above the rim), radial offset from the axis (m, >= 0), "
                          "tilt between lid and container axes (rad)"),
        ("handle_rel", 3, "lid handle (knob centre) minus the grip point, m, world frame"),
        ("handle_rel_g", 3, "lid handle minus the grip point, m, gripper frame"),
        ("handle_vel", 3, "velocity of that handle site, m/s, world frame"),
        ("lid_axis_g", 3, "lid axis, unit, gripper frame"),
        ("seat_rel", 3, "rim centre minus the lid seat point, m, world frame"),
        ("container_axis_g", 3, "container axis, unit, gripper frame"),
    )

    def scene(self) -> TaskScene:
        """Cabin bodies: the container and the lid, both free-flying."""
        ch, cr = CONTAINER_HALF_HEIGHT_M, CONTAINER_RADIUS_M
        lt, lr = LID_HALF_THICKNESS_M, LID_RADIUS_M
        hh, hr = HANDLE_HALF_HEIGHT_M, HANDLE_RADIUS_M
        bodies = f"""
    <body name="container" pos="{CONTAINER_CENTER_M[0]} 0 {CONTAINER_CENTER_M[2]}">
      <freejoint name="container"/>
      <geom name="container" type="cylinder" size="{cr} {ch}" mass="2.0" material="metal"/>
      <geom class="decor" type="cylinder" size="{cr - 0.006} 0.0005" pos="0 0 {ch}"
            mass="0" rgba=".15 .15 .18 1"/>
      <site name="rim" pos="0 0 {ch}" size="0.005" rgba="0 0 1 0.5"/>
    </body>
    <body name="lid" pos="{LID_CENTER_M[0]} 0 {LID_CENTER_M[2]}">
      <freejoint name="lid"/>
      <geom name="lid" type="cylinder" size="{lr} {lt}" mass="0.22" material="accent"/>
      <geom name="lid_knob" type="cylinder" size="{hr} {hh}" pos="0 0 {lt + hh}" mass="0.03"
            material="accent"/>
      <site name="lid_handle" pos="0 0 {lt + hh}" size="0.005" rgba="1 1 0 0.5"/>
      <site name="lid_seat" pos="0 0 {-lt}" size="0.005" rgba="0 1 1 0.5"/>
    </body>"""
        return TaskScene(
            bodies=bodies,
            gripper_pos=(-0.05, 0.0, 0.55),
            camera_pos=(0.8, -0.9, 0.7),
            camera_target=(0.0, 0.0, 0.2),
        )

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        super().__init__(render_mode=render_mode, max_steps=max_steps)
        self._lid_geom = self.model.geom("lid").id
        self._container_geom = self.model.geom("container").id

    # ---- randomization ----------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        """Poses, drift and tumble of container and lid (ranges in the module docstring)."""
        for joint, centre in (("container", CONTAINER_CENTER_M), ("lid", LID_CENTER_M)):
            pos = centre + rng.uniform(-POS_JITTER_M, POS_JITTER_M, 3)
            quat = _tilted_quat(rng, MAX_TILT_RAD)
            linvel = rot.random_unit(rng) * rng.uniform(*DRIFT_SPEED_MPS)
            angvel = rot.random_unit(rng) * rng.uniform(0.0, MAX_TUMBLE_RADPS)
            self.set_free_body(joint, pos, quat, linvel, angvel)

    # ---- task state ---------------------------------------------------------------------
    def container_axis(self) -> np.ndarray:
        """Container axis (rim normal), unit vector, world frame."""
        return self.data.body("container").xmat.reshape(3, 3)[:, 2].copy()

    def lid_axis(self) -> np.ndarray:
        """Lid axis (underside -> handle), unit vector, world frame."""
        return self.data.body("lid").xmat.reshape(3, 3)[:, 2].copy()

    def body_velocity(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(linear m/s, angular rad/s)`` of free body ``name``, world frame; the linear
        velocity is that of the body origin (the geometric centre)."""
        v = self.joint_qvel(name)
        return v[:3].copy(), self.data.body(name).xmat.reshape(3, 3) @ v[3:6]

    def seat_error(self) -> np.ndarray:
        """``(axial m, radial m, tilt rad)`` of the lid seat point against the rim."""
        a = self.container_axis()
        d = self.site_pos("lid_seat") - self.site_pos("rim")
        axial = float(d @ a)
        radial = float(np.linalg.norm(d - axial * a))
        tilt = float(np.arccos(np.clip(self.lid_axis() @ a, -1.0, 1.0)))
        return np.array([axial, radial, tilt])

    def lid_touches_container(self) -> bool:
        """Whether MuJoCo reports at least one contact between lid and container."""
        g = self.data.contact.geom  # (ncon, 2) geom ids of the active contacts
        lid, box = self._lid_geom, self._container_geom
        return bool(np.any(((g[:, 0] == lid) & (g[:, 1] == box))
                           | ((g[:, 0] == box) & (g[:, 1] == lid))))

    def _features(self) -> np.ndarray:
        cv, cw = self.body_velocity("container")
        lv, lw = self.body_velocity("lid")
        return np.concatenate([
            self.site_pos("rim"), self.container_axis(), cv, cw,
            self.site_pos("lid_seat"), self.lid_axis(), lv, lw,
            self.seat_error(),
            *self.rel_grip(self.site_pos("lid_handle")), self.site_velocity("lid_handle"),
            self.in_gripper(self.lid_axis()),
            self.site_pos("rim") - self.site_pos("lid_seat"),
            self.in_gripper(self.container_axis()),
        ])

    def _evaluate(self) -> tuple[float, bool]:
        axial, radial, tilt = self.seat_error()
        success = bool(abs(axial) < AXIAL_TOL_M and radial < RADIAL_TOL_M
                       and tilt < ANGLE_TOL_RAD and self.lid_touches_container())
        reach = 1.0 - np.tanh(10.0 * np.linalg.norm(self.grip_pos - self.site_pos("lid_handle")))
        held = 1.0 if self.grasped == "lid" else 0.0
        align = (1.0 - np.tanh(10.0 * radial)) * (1.0 - np.tanh(2.0 * tilt))
        insert = 1.0 - np.tanh(10.0 * abs(axial))
        reward = 0.2 * reach + 0.2 * held + 0.3 * align + 0.3 * align * insert + float(success)
        return float(reward), success
