"""``drawer`` -- Long-horizon Drawer Stowing (L-SDPPO task V) in the zero-g cabin.

Task: open a drawer, stow a free-floating item in it, close it. The long-horizon sequence
is: grasp the drawer handle, pull the drawer open, release it, catch the item (which
drifts and tumbles slowly the whole time, including while the drawer is being opened),
turn it upright, lower it into the drawer, release it, grasp the handle again and push
the drawer closed, then let go.

Scene (SI units, cabin frame, z up; no gravity, no air damping):

- ``cabinet``: a fixed housing mounted at nominal (0.30, 0, 0) m (its front opening; the
  housing extends 0.28 m towards +x), axes aligned with the cabin frame. Five 12 mm
  panels (top, bottom, two sides, back) around an inner cavity 0.27 x 0.30 x 0.13 m
  (x, y, z). The front (-x side) is open.
- ``drawer``: an open-top tray on the slide joint ``drawer_slide`` (axis -x: positive
  opening pulls the drawer out into the cabin; range [0, 0.20] m, 0 = closed against the
  stop). Nominal mass 1.5 kg. A floor and four 8 mm walls enclose the interior, which in
  the drawer frame (the drawer body origin, at the cabinet origin when closed) spans
  x in [0.008, 0.252], y in [-0.132, 0.132], z in [-0.050, 0.050] m: 0.244 x 0.264 x
  0.100 m. When closed, the housing's top panel (0.015 m above the wall tops) covers it,
  so an item released inside stays in while the drawer is closed. A 0.34 x 0.17 m face
  plate (x in [-0.010, 0]) carries a bar handle (radius 8 mm, 0.12 m long, along y) whose
  centre is the handle site ``drawer_handle`` at (-0.05, 0, 0.02) m in the drawer frame.
  Drawer and housing do not collide with each other (the slide joint and its limits
  guide the drawer); both collide with the gripper palm and the item.
- ``item``: a free-floating tool kit, a 0.10 x 0.07 x 0.04 m box (its local x, y, z),
  mass U(0.2, 1.0) kg, with a carry loop on its +z face (visual only); the handle site
  ``item_handle`` is at (0, 0, 0.04) m in the item frame (0.02 m above the +z face).
- The free-flying gripper (base) starts near (0, 0, 0.25) m, pointing down.

Grasp is the base's weld: grip point within 0.025 m of ``drawer_handle`` or
``item_handle`` while closing, released when opening.

Success criterion (checked every step; the episode ends on success): the item centre,
expressed in the drawer frame, lies inside the interior box x in [0.008, 0.252],
y in [-0.132, 0.132], z in [-0.050, 0.050] m, AND the drawer opening is below
``CLOSED_M`` = 0.01 m, AND the item is not grasped.

Shaped reward (dense, staged, every step; distances in m)::

    reach_h = 1 - tanh(10 * |grip - drawer_handle|)
    reach_i = 1 - tanh(10 * |grip - item_handle|)
    open_f  = clip(opening / OPEN_M, 0, 1)                 # OPEN_M = 0.15
    place   = 1 - tanh(5 * |item - slot|)   # slot: drawer-frame point (0.09, 0, -0.02)
    inside  = item centre in the interior box (as in the criterion)
    if inside and item not grasped:      reward = 3 + 0.25 * reach_h + 0.75 * (1 - open_f)
    elif item grasped and opening >= OPEN_M:  reward = 2 + place
    elif opening >= OPEN_M:                   reward = 1 + reach_i
    else:                                      reward = 0.3 * reach_h + 0.5 * open_f
    reward += 1 on success

so reward is in [0, 5]: the stages are open the drawer, reach the item, carry it to the
slot, then close the drawer with it inside; the success step pays 1 extra.

Randomization per reset (``rng`` = ``self.np_random``):

- base class: task body masses x U(0.7, 1.3) (so the drawer is 1.05-1.95 kg; inertia
  scaled alike), geom sliding friction x U(0.7, 1.3), gripper start +- 0.03 m per axis;
- item mass: overridden to U(0.2, 1.0) kg (inertia scaled with it);
- cabinet position: nominal + U(-0.03, 0.03) m per axis (no rotation);
- drawer slide: dry friction (``frictionloss``) U(0.5, 3.0) N, damping U(0.5, 3.0) N s/m;
  the drawer starts closed and at rest;
- item centre: x U(-0.05, 0.15) m, y +-U(0.26, 0.36) m (side drawn at random), z
  U(-0.05, 0.20) m; orientation uniformly random;
- item drift: speed U(0.005, 0.03) m/s in a uniformly random direction;
- item tumble: U(0, 0.2) rad/s about a uniformly random axis (world frame).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.grasp import Grasp
from hardware.sim.scene import TaskScene

# geometry (m), in the cabinet / drawer frame (x into the cabinet)
CABINET_POS_M = np.array([0.30, 0.0, 0.0])
INTERIOR_LO_M = np.array([0.008, -0.132, -0.050])
INTERIOR_HI_M = np.array([0.252, 0.132, 0.050])
DRAWER_HANDLE_M = np.array([-0.05, 0.0, 0.02])
SLOT_M = np.array([0.09, 0.0, -0.02])  # reward's target point for the item centre
OPENING_RANGE_M = 0.20
DRAWER_MASS_KG = 1.5
ITEM_MAX_TILT_RAD = np.deg2rad(60.0)  # approach tilt about the carry loop a grasp allows
ITEM_HALF_M = np.array([0.05, 0.035, 0.02])
ITEM_HANDLE_M = np.array([0.0, 0.0, 0.04])  # item handle site in the item frame

# success and reward thresholds
CLOSED_M = 0.01
OPEN_M = 0.15

# randomization ranges
CABINET_JITTER_M = 0.03
SLIDE_FRICTION_N = (0.5, 3.0)
SLIDE_DAMPING_NS_M = (0.5, 3.0)
ITEM_MASS_KG = (0.2, 1.0)
ITEM_X_M = (-0.05, 0.15)
ITEM_ABS_Y_M = (0.26, 0.36)
ITEM_Z_M = (-0.05, 0.20)
DRIFT_M_S = (0.005, 0.03)
TUMBLE_RAD_S = (0.0, 0.2)


class DrawerEnv(CabinEnv):
    """Open a drawer, stow a drifting item in it, close it (see the module docstring)."""

    NAME: ClassVar[str] = "drawer"
    MAX_STEPS: ClassVar[int] = 400
    SUCCESS_CRITERION: ClassVar[str] = (
        "The item centre, in the drawer frame, lies inside the drawer interior box "
        "x in [0.008, 0.252], y in [-0.132, 0.132], z in [-0.050, 0.050] m, the drawer "
        "opening is below 0.01 m, and the item is not grasped, all at the same step."
    )
    # the drawer's bar handle (along y), from above; the item's carry loop (along its y),
    # approached along its +z or tilted about the loop by up to 60 deg
    GRASPS: ClassVar[tuple[Grasp, ...]] = (
        Grasp("drawer", "drawer_handle", axis=(0.0, 0.0, 1.0), bar=(0.0, 1.0, 0.0)),
        Grasp("item", "item_handle", axis=(0.0, 0.0, 1.0), bar=(0.0, 1.0, 0.0),
              max_tilt_rad=float(ITEM_MAX_TILT_RAD)),
    )
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = (
        ("drawer_opening", 1, "drawer slide position, m (0 closed, 0.20 max)"),
        ("drawer_vel", 1, "drawer opening rate, m/s (positive opens)"),
        ("drawer_handle_pos", 3, "drawer handle site (grasp point), m, world frame; the "
                                 "interior spans handle + [0.058, 0.302] x [-0.132, 0.132]"
                                 " x [-0.07, 0.03] m (cabinet axes = world axes)"),
        ("item_pos", 3, "item (box) centre, m, world frame"),
        ("item_rot6", 6, "item x axis and z axis (its handle is 0.04 m along +z, the carry "
                         "loop along its y axis), unit, world frame"),
        ("item_linvel", 3, "item centre linear velocity, m/s, world frame"),
        ("item_angvel", 3, "item angular velocity, rad/s, world frame"),
        ("drawer_handle_rel", 3, "drawer handle site minus the grip point, m, world frame"),
        ("item_rel", 3, "item centre minus the grip point, m, world frame"),
        ("item_handle_rel", 3, "item handle site minus the grip point, m, world frame"),
        ("item_handle_rel_g", 3, "item handle site minus the grip point, m, gripper frame"),
        ("item_handle_vel", 3, "velocity of that handle site, m/s, world frame"),
        ("item_z_g", 3, "item z axis (handle side), unit, gripper frame"),
        ("item_y_g", 3, "item y axis (along the carry loop), unit, gripper frame"),
        ("item_in_drawer", 3, "item centre in the drawer frame, m (the interior box is "
                              "[0.008, 0.252] x [-0.132, 0.132] x [-0.05, 0.05])"),
    )

    def scene(self) -> TaskScene:
        """Cabin bodies: the fixed cabinet housing, the sliding drawer, the item."""
        c = CABINET_POS_M
        hx, hy, hz = ITEM_HALF_M
        bodies = f"""
    <body name="cabinet" pos="{c[0]:g} {c[1]:g} {c[2]:g}">
      <geom name="cab_top" type="box" size="0.135 0.162 0.006" pos="0.135 0 0.071"
            material="metal"/>
      <geom name="cab_bottom" type="box" size="0.135 0.162 0.006" pos="0.135 0 -0.071"
            material="metal"/>
      <geom name="cab_left" type="box" size="0.135 0.006 0.065" pos="0.135 0.156 0"
            material="metal"/>
      <geom name="cab_right" type="box" size="0.135 0.006 0.065" pos="0.135 -0.156 0"
            material="metal"/>
      <geom name="cab_back" type="box" size="0.006 0.162 0.077" pos="0.276 0 0"
            material="metal"/>
      <body name="drawer">
        <joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {OPENING_RANGE_M:g}"
               damping="1" frictionloss="1" armature="0.01"/>
        <inertial pos="0.12 0 -0.02" mass="{DRAWER_MASS_KG:g}"
                  diaginertia="0.012 0.010 0.018"/>
        <geom name="drw_floor" type="box" size="0.13 0.14 0.004" pos="0.13 0 -0.054"
              rgba=".85 .87 .9 1"/>
        <geom name="drw_left" type="box" size="0.13 0.004 0.054" pos="0.13 0.136 -0.004"
              rgba=".85 .87 .9 1"/>
        <geom name="drw_right" type="box" size="0.13 0.004 0.054" pos="0.13 -0.136 -0.004"
              rgba=".85 .87 .9 1"/>
        <geom name="drw_back" type="box" size="0.004 0.14 0.054" pos="0.256 0 -0.004"
              rgba=".85 .87 .9 1"/>
        <geom name="drw_front" type="box" size="0.004 0.14 0.054" pos="0.004 0 -0.004"
              rgba=".85 .87 .9 1"/>
        <geom name="drw_face" type="box" size="0.005 0.17 0.085" pos="-0.005 0 0"
              material="accent"/>
        <geom name="drw_handle" type="capsule" size="0.008 0.06" pos="-0.05 0 0.02"
              zaxis="0 1 0" material="gripper"/>
        <geom class="decor" type="box" size="0.02 0.005 0.005" pos="-0.03 0.055 0.02"
              material="gripper"/>
        <geom class="decor" type="box" size="0.02 0.005 0.005" pos="-0.03 -0.055 0.02"
              material="gripper"/>
        <site name="drawer_handle" pos="{DRAWER_HANDLE_M[0]:g} 0 {DRAWER_HANDLE_M[2]:g}"
              size="0.006" rgba="1 1 0 0.6"/>
      </body>
    </body>
    <body name="item" pos="0 0.3 0.1">
      <freejoint name="item"/>
      <geom name="item" type="box" size="{hx:g} {hy:g} {hz:g}" mass="0.6"
            rgba=".2 .5 .85 1"/>
      <geom class="decor" type="capsule" size="0.005 0.03" pos="0 0 {ITEM_HANDLE_M[2]:g}"
            zaxis="0 1 0" material="accent"/>
      <geom class="decor" type="box" size="0.004 0.004 0.01" pos="0 0.03 {hz + 0.01:g}"
            material="accent"/>
      <geom class="decor" type="box" size="0.004 0.004 0.01" pos="0 -0.03 {hz + 0.01:g}"
            material="accent"/>
      <site name="item_handle" pos="0 0 {ITEM_HANDLE_M[2]:g}" size="0.006" rgba="1 1 0 0.6"/>
    </body>"""
        extra = '  <contact><exclude body1="cabinet" body2="drawer"/></contact>'
        return TaskScene(
            bodies=bodies,
            extra=extra,
            gripper_pos=(0.0, 0.0, 0.25),
            camera_pos=(-0.55, -0.85, 0.65),
            camera_target=(0.2, 0.0, 0.0),
        )

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        super().__init__(render_mode=render_mode, max_steps=max_steps)
        m = self.model
        self._cabinet = m.body("cabinet").id
        self._cabinet_pos0 = m.body_pos[self._cabinet].copy()
        self._drawer = m.body("drawer").id
        self._item = m.body("item").id
        slide = m.joint("drawer_slide")
        self._slide_jnt = slide.id
        self._slide_q, self._slide_v = int(slide.qposadr[0]), int(slide.dofadr[0])
        item = m.joint("item")
        self._item_q, self._item_v = int(item.qposadr[0]), int(item.dofadr[0])
        self._drawer_handle = m.site("drawer_handle").id
        self._item_handle = m.site("item_handle").id
        self._item_mass0 = float(m.body_mass[self._item])
        self._item_inertia0 = m.body_inertia[self._item].copy()

    # ---- state -------------------------------------------------------------------------
    @property
    def opening(self) -> float:
        """Drawer opening, m (0 = closed)."""
        return float(self.data.qpos[self._slide_q])

    @property
    def opening_vel(self) -> float:
        """Drawer opening rate, m/s."""
        return float(self.data.qvel[self._slide_v])

    @property
    def open_dir(self) -> np.ndarray:
        """Unit world direction in which the drawer opens."""
        return self.data.xaxis[self._slide_jnt].copy()

    @property
    def item_linvel(self) -> np.ndarray:
        """Item centre velocity, m/s, world frame."""
        return self.data.qvel[self._item_v : self._item_v + 3].copy()

    @property
    def item_angvel(self) -> np.ndarray:
        """Item angular velocity, rad/s, world frame."""
        omega_body = self.data.qvel[self._item_v + 3 : self._item_v + 6]
        return self.data.xmat[self._item].reshape(3, 3) @ omega_body

    def to_drawer(self, p: np.ndarray) -> np.ndarray:
        """World point ``p`` (m) expressed in the drawer frame (m)."""
        d = self.data
        return d.xmat[self._drawer].reshape(3, 3).T @ (np.asarray(p) - d.xpos[self._drawer])

    def from_drawer(self, p: np.ndarray) -> np.ndarray:
        """Drawer-frame point ``p`` (m) in the world frame (m)."""
        d = self.data
        return d.xpos[self._drawer] + d.xmat[self._drawer].reshape(3, 3) @ np.asarray(p)

    def item_inside(self, margin_m: float = 0.0) -> bool:
        """Whether the item centre is inside the drawer interior box, shrunk by
        ``margin_m`` (m) on every side."""
        local = self.to_drawer(self.data.xpos[self._item])
        return bool(np.all(local >= INTERIOR_LO_M + margin_m)
                    and np.all(local <= INTERIOR_HI_M - margin_m))

    # ---- randomization ----------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        """Cabinet position, slide friction/damping, item mass, pose, drift and tumble."""
        m, d = self.model, self.data
        m.body_pos[self._cabinet] = self._cabinet_pos0 + rng.uniform(
            -CABINET_JITTER_M, CABINET_JITTER_M, 3)
        m.dof_frictionloss[self._slide_v] = rng.uniform(*SLIDE_FRICTION_N)
        m.dof_damping[self._slide_v] = rng.uniform(*SLIDE_DAMPING_NS_M)
        mass = rng.uniform(*ITEM_MASS_KG)
        m.body_mass[self._item] = mass
        m.body_inertia[self._item] = self._item_inertia0 * (mass / self._item_mass0)
        d.qpos[self._slide_q] = 0.0
        d.qvel[self._slide_v] = 0.0
        pos = np.array([rng.uniform(*ITEM_X_M),
                        rng.choice([-1.0, 1.0]) * rng.uniform(*ITEM_ABS_Y_M),
                        rng.uniform(*ITEM_Z_M)])
        quat = rot.random_quat(rng)
        linvel = rng.uniform(*DRIFT_M_S) * rot.random_unit(rng)
        angvel = rng.uniform(*TUMBLE_RAD_S) * rot.random_unit(rng)
        self.set_free_body("item", pos, quat, linvel, angvel)

    # ---- observation and evaluation ---------------------------------------------------
    def _features(self) -> np.ndarray:
        d = self.data
        r = d.xmat[self._item].reshape(3, 3)
        item_handle = d.site_xpos[self._item_handle]
        return np.concatenate([
            [self.opening, self.opening_vel],
            d.site_xpos[self._drawer_handle],
            d.xpos[self._item], r[:, 0], r[:, 2],
            self.item_linvel, self.item_angvel,
            self.rel_grip(d.site_xpos[self._drawer_handle])[0],
            self.rel_grip(d.xpos[self._item])[0],
            *self.rel_grip(item_handle), self.site_velocity("item_handle"),
            self.in_gripper(r[:, 2]), self.in_gripper(r[:, 1]),
            self.to_drawer(d.xpos[self._item]),
        ])

    def _evaluate(self) -> tuple[float, bool]:
        d = self.data
        q = self.opening
        inside = self.item_inside()
        held_item = self.grasped == "item"
        success = bool(inside and q < CLOSED_M and not held_item)
        grip = self.grip_pos
        reach_h = 1.0 - np.tanh(10.0 * np.linalg.norm(grip - d.site_xpos[self._drawer_handle]))
        reach_i = 1.0 - np.tanh(10.0 * np.linalg.norm(grip - d.site_xpos[self._item_handle]))
        open_f = float(np.clip(q / OPEN_M, 0.0, 1.0))
        if inside and not held_item:
            reward = 3.0 + 0.25 * reach_h + 0.75 * (1.0 - open_f)
        elif held_item and q >= OPEN_M:
            slot = self.from_drawer(SLOT_M)
            reward = 3.0 - np.tanh(5.0 * np.linalg.norm(d.xpos[self._item] - slot))
        elif q >= OPEN_M:
            reward = 1.0 + reach_i
        else:
            reward = 0.3 * reach_h + 0.5 * open_f
        return float(reward + float(success)), success
