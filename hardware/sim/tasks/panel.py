"""``panel`` -- Sequential Panel Operation (L-SDPPO task IV) in the zero-g cabin.

Task: press the spring-loaded push button on a wall-mounted control panel (this arms the
panel's socket), then catch a free-floating plug that drifts and tumbles nearby and
insert its pin into the socket. Order matters: the socket only accepts the plug once it
has been armed.

Scene (SI units, cabin frame, z up; no gravity, no air damping):

- ``panel``: a fixed body whose origin is the centre of the panel's front face,
  nominally at (0.34, 0, 0.2) m. Its local z axis is the face's outward normal ``n``
  (nominally world -x, towards the cabin centre), local x is "up" on the panel (nominally
  world +z). It carries the face plate (0.36 m wide x 0.24 m tall x 0.02 m thick box,
  collides), the button and the socket.
- ``button``: a round push button, cap radius 0.018 m, protruding 0.02 m from the face,
  mass 0.05 kg, at panel-local (0, -0.08, 0) (0.08 m to one side of the face centre). It
  rides a slide joint ``button_slide`` along -n; its position is the *travel* (m, 0 = out,
  0.012 = bottomed out; range [0, 0.012]). A return spring (``springref = -3 mm``, i.e.
  preloaded against the outer stop) and dry friction push it back out once released.
- ``socket``: a square bore 0.024 x 0.024 m (half width 0.012 m), 0.03 m deep, formed by
  four box walls of a boss protruding 0.03 m from the face at panel-local (0, 0.08, 0);
  the bore floor is the face plate. Site ``socket`` marks the centre of the bore's mouth
  (0.03 m out along ``n`` from the floor); the socket axis is ``n``.
- ``plug``: a free-flying plug, nominal mass 0.27 kg (0.19-0.35 kg after the base's
  scaling): a cylindrical body (radius 0.02 m, length 0.05 m, 0.2 kg), a pin on its -z
  end (radius 0.008 m, length 0.035 m, 0.05 kg) and a knob handle on its +z end (radius
  0.01 m, length 0.02 m, 0.02 kg). The plug axis ``p`` is its body +z axis (pin -> handle).
  Sites: ``plug_handle`` (knob centre, the grasp point), ``plug_tip`` (end face centre of
  the pin). The pin fits the bore with 4 mm clearance per side; the plug body
  (radius 0.02 m) cannot enter it, so the pin bottoms out on the floor at depth 0.03 m.
- The free-flying gripper (base) starts near (0, -0.1, 0.35) m, pointing down.

Socket logic (updated from the state at every control step, before success is checked;
the base calls ``_evaluate`` once per step and once at reset):

- depth ``d = (s - t) . n`` (m, > 0 = the tip is past the mouth plane, into the bore) and
  radial offset ``r = |(t - s) + d n|`` (m), with ``s`` the mouth centre, ``t`` the plug
  tip; tilt ``theta = angle(p, n)`` (rad).
- ``armed``: set when the button travel reaches ``ARM_TRAVEL_M`` = 8 mm; it stays set
  until the next reset (releasing the button does not disarm the socket).
- ``order_fault``: set when the tip is in the bore (``d > 0`` and ``r < 0.012 m``) while the
  socket is *not* armed; cleared only when the tip leaves the bore again (``d <= 0`` or
  ``r >= 0.012 m``). So a plug inserted before the press does not count, not even if the
  button is pressed afterwards with the plug still in: it must be pulled out and
  re-inserted after arming.

Success criterion: ``armed`` AND NOT ``order_fault`` AND ``d >= 0.025 m`` (tip at least
25 mm into the 30 mm bore, i.e. within 5 mm of its floor) AND ``r < 0.003 m`` AND
``theta < 5 deg``, on the current state, whether or not the gripper still holds the plug.

Shaped reward (dense, staged, every step; distances in m, angles in rad)::

    press  = 1 if armed else 0.5 * (1 - tanh(10 * |palm - button|))
                              + 0.5 * clip(travel / ARM_TRAVEL_M, 0, 1)
    go     = 1 if armed and not order_fault else 0
    reach  = 1 - tanh(10 * |grip - plug_handle|)
    held   = 1 if the plug is grasped else 0
    align  = (1 - tanh(10 * r)) * (1 - tanh(2 * theta))
    insert = clip(d / 0.025, 0, 1)
    reward = 0.3 * press + go * (0.1 * reach + 0.1 * held + 0.25 * align
                                 + 0.25 * align * insert) + 1.0 * success

(``palm`` = gripper body origin, ``button`` = centre of the button cap's face), so reward
is in [0, 2]; the plug stages pay nothing before the press, and the success step pays 1.

Randomization per reset (``rng`` = ``self.np_random``):

- base class: task body masses (button, plug; the fixed panel's mass is irrelevant) x
  U(0.7, 1.3) (inertia alike), geom sliding friction x U(0.7, 1.3), gripper start
  +- 0.03 m per axis;
- panel pose: face centre (0.34, 0, 0.2) m + U(-0.03, 0.03) per axis; normal yawed about
  world z by U(-15, 15) deg and pitched by U(-10, 10) deg (the base recomputes derived
  constants afterwards);
- button: spring stiffness U(80, 200) N/m, dry friction (``frictionloss``) U(0.2, 0.8) N;
  it starts out (travel 0) at rest;
- plug: centre (0.05, 0.12, 0.0) m + U(-0.05, 0.05) per axis, uniformly random
  orientation; drift: speed U(0.005, 0.02) m/s in a uniformly random direction; tumble:
  angular velocity of magnitude U(0, 0.3) rad/s about a uniformly random axis (world).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import CabinEnv
from hardware.sim.grasp import Grasp
from hardware.sim.scene import TaskScene

# geometry (m) and masses (kg)
PANEL_POS_M = np.array([0.34, 0.0, 0.2])
PANEL_HALF_M = (0.12, 0.18, 0.01)  # half height (local x), half width (y), half thickness
BUTTON_Y_M = -0.08
BUTTON_RADIUS_M = 0.018
BUTTON_PROTRUDE_M = 0.02
BUTTON_TRAVEL_M = 0.012
BUTTON_MASS_KG = 0.05
SOCKET_Y_M = 0.08
BORE_HALF_M = 0.012
BORE_DEPTH_M = 0.03
WALL_M = 0.012  # socket wall thickness
PLUG_RADIUS_M = 0.02
PLUG_HALF_LEN_M = 0.025
PIN_RADIUS_M = 0.008
PIN_LEN_M = 0.035
KNOB_RADIUS_M = 0.01
KNOB_HALF_LEN_M = 0.01
HANDLE_TO_TIP_M = KNOB_HALF_LEN_M + 2 * PLUG_HALF_LEN_M + PIN_LEN_M

# socket logic and success
ARM_TRAVEL_M = 0.008
DEPTH_MIN_M = 0.025
RADIAL_TOL_M = 0.003
ANGLE_TOL_RAD = np.deg2rad(5.0)

# randomization ranges
PANEL_JITTER_M = 0.03
PANEL_YAW_RAD = np.deg2rad(15.0)
PANEL_PITCH_RAD = np.deg2rad(10.0)
BUTTON_STIFFNESS = (80.0, 200.0)  # N/m
BUTTON_FRICTION = (0.2, 0.8)  # N
PLUG_CENTER_M = np.array([0.05, 0.12, 0.0])
PLUG_JITTER_M = 0.05
DRIFT_SPEED_MPS = (0.005, 0.02)
MAX_TUMBLE_RADPS = 0.3

# panel local frame: z = outward normal (world -x), x = up (world +z), y = world y
_PANEL_QUAT0 = rot.axisangle_to_quat(np.array([0.0, -np.pi / 2, 0.0]))


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _socket_walls() -> str:
    """Four box walls of the socket boss around the bore (panel-local MJCF)."""
    h, w, depth = BORE_HALF_M, WALL_M, BORE_DEPTH_M
    y0, zc = SOCKET_Y_M, depth / 2
    walls = [  # (x, y, half x, half y): two side walls, then top and bottom walls
        (0.0, y0 - h - w / 2, h + w, w / 2),
        (0.0, y0 + h + w / 2, h + w, w / 2),
        (h + w / 2, y0, w / 2, h),
        (-h - w / 2, y0, w / 2, h),
    ]
    return "\n".join(
        f'      <geom name="socket_wall{i}" type="box" size="{hx:g} {hy:g} {zc:g}" '
        f'pos="{x:g} {y:g} {zc:g}" material="metal"/>'
        for i, (x, y, hx, hy) in enumerate(walls)
    )


class PanelEnv(CabinEnv):
    """Press the button, then plug the drifting plug into the socket (module docstring)."""

    NAME: ClassVar[str] = "panel"
    MAX_STEPS: ClassVar[int] = 200
    SUCCESS_CRITERION: ClassVar[str] = (
        "The socket is armed (button travel reached 8 mm at some earlier step) with no "
        "order fault (the plug tip did not enter the bore while unarmed without being "
        "withdrawn since), the plug tip is at least 25 mm past the socket mouth along the "
        "socket axis (30 mm bore) and less than 3 mm off that axis, and the plug axis is "
        "within 5 deg of the socket axis."
    )
    # the knob on the plug's +z end, approached along the plug axis
    GRASPS: ClassVar[tuple[Grasp, ...]] = (Grasp("plug", "plug_handle", axis=(0.0, 0.0, 1.0)),)
    STATE_ATTRS: ClassVar[tuple[str, ...]] = ("armed", "order_fault")
    OBS_FIELDS: ClassVar[tuple[tuple[str, int, str], ...]] = (
        ("button_travel", 1, "button travel into the panel, m (0 out, 0.012 bottomed out)"),
        ("armed", 1, "1 once the button travel has reached 0.008 m this episode, else 0"),
        ("order_fault", 1, "1 while a plug inserted before arming is still in the bore, "
                           "else 0 (success impossible while 1)"),
        ("button_pos", 3, "centre of the button cap's face at zero travel, m, world frame"),
        ("plug_pos", 3, "plug body origin (centre of its cylindrical body), m, world frame"),
        ("plug_axis", 3, "plug axis (pin tip -> handle), unit, world frame"),
        ("plug_linvel", 3, "velocity of the plug body origin, m/s, world frame"),
        ("plug_angvel", 3, "plug angular velocity, rad/s, world frame"),
        ("socket_pos", 3, "centre of the socket bore's mouth, m, world frame"),
        ("socket_axis", 3, "socket axis = panel outward normal, unit, world frame"),
        ("tip_rel", 3, "plug tip minus socket mouth centre, m, world frame"),
        ("button_rel_g", 3, "button face (at zero travel) minus the gripper body origin, m, "
                            "gripper frame"),
        ("socket_axis_g", 3, "socket axis, unit, gripper frame"),
        ("plug_rel", 3, "plug centre minus the grip point, m, world frame"),
        ("handle_rel", 3, "plug handle (knob centre) minus the grip point, m, world frame"),
        ("handle_rel_g", 3, "plug handle minus the grip point, m, gripper frame"),
        ("handle_vel", 3, "velocity of that handle site, m/s, world frame"),
        ("plug_axis_g", 3, "plug axis, unit, gripper frame"),
        ("plug_rel_g", 3, "plug_rel in the gripper frame, m"),
        ("plug_linvel_g", 3, "plug_linvel in the gripper frame, m/s"),
        ("plug_angvel_g", 3, "plug_angvel in the gripper frame, rad/s"),
        ("handle_vel_g", 3, "handle_vel in the gripper frame, m/s"),
        ("tip_rel_g", 3, "tip_rel in the gripper frame, m"),
    )

    def scene(self) -> TaskScene:
        """Cabin bodies: the fixed panel with button and socket, the free plug."""
        px, py, pz = PANEL_HALF_M
        br, bp = BUTTON_RADIUS_M, BUTTON_PROTRUDE_M
        pr, pl = PLUG_RADIUS_M, PLUG_HALF_LEN_M
        kr, kl = KNOB_RADIUS_M, KNOB_HALF_LEN_M
        q = " ".join(f"{v:.9g}" for v in _PANEL_QUAT0)
        x, y, z = PANEL_POS_M
        bodies = f"""
    <body name="panel" pos="{x:g} {y:g} {z:g}" quat="{q}">
      <geom name="panel_plate" type="box" size="{px:g} {py:g} {pz:g}" pos="0 0 {-pz:g}"
            rgba=".72 .74 .78 1"/>
      <geom class="decor" type="cylinder" size="{br + 0.006:g} 0.001"
            pos="0 {BUTTON_Y_M:g} 0.001" rgba=".15 .15 .18 1"/>
      <geom class="decor" type="box" size="0.004 0.03 0.001" pos="0.05 {BUTTON_Y_M:g} 0.001"
            rgba=".1 .6 .2 1"/>
      <geom class="decor" type="box" size="0.004 0.03 0.001" pos="0.05 {SOCKET_Y_M:g} 0.001"
            rgba=".9 .2 .1 1"/>
{_socket_walls()}
      <site name="socket" pos="0 {SOCKET_Y_M:g} {BORE_DEPTH_M:g}" size="0.004"
            rgba="0 0 1 0.5"/>
      <body name="button" pos="0 {BUTTON_Y_M:g} 0">
        <joint name="button_slide" type="slide" axis="0 0 -1"
               range="0 {BUTTON_TRAVEL_M:g}" springref="-0.003" stiffness="120"
               damping="1" frictionloss="0.5" armature="0.01"/>
        <geom name="button_cap" type="cylinder" size="{br:g} {bp / 2:g}" pos="0 0 {bp / 2:g}"
              mass="{BUTTON_MASS_KG:g}" rgba=".1 .7 .25 1"/>
        <site name="button_face" pos="0 0 {bp:g}" size="0.004" rgba="1 1 0 0.5"/>
      </body>
    </body>
    <body name="plug" pos="{PLUG_CENTER_M[0]:g} {PLUG_CENTER_M[1]:g} {PLUG_CENTER_M[2]:g}">
      <freejoint name="plug"/>
      <geom name="plug_body" type="cylinder" size="{pr:g} {pl:g}" mass="0.2"
            material="accent"/>
      <geom name="plug_pin" type="cylinder" size="{PIN_RADIUS_M:g} {PIN_LEN_M / 2:g}"
            pos="0 0 {-pl - PIN_LEN_M / 2:g}" mass="0.05" material="metal"/>
      <geom name="plug_knob" type="cylinder" size="{kr:g} {kl:g}" pos="0 0 {pl + kl:g}"
            mass="0.02" material="gripper"/>
      <site name="plug_handle" pos="0 0 {pl + kl:g}" size="0.005" rgba="1 1 0 0.5"/>
      <site name="plug_tip" pos="0 0 {-pl - PIN_LEN_M:g}" size="0.004" rgba="0 1 1 0.5"/>
    </body>"""
        return TaskScene(
            bodies=bodies,
            # the panel is welded to the world, so MuJoCo's parent filter does not keep the
            # button cap (which sinks into the plate when pressed) from colliding with it
            extra='  <contact><exclude body1="panel" body2="button"/></contact>',
            gripper_pos=(0.0, -0.1, 0.35),
            camera_pos=(-0.55, -0.85, 0.65),
            camera_target=(0.2, 0.0, 0.15),
        )

    def __init__(self, render_mode: str | None = None, max_steps: int | None = None) -> None:
        super().__init__(render_mode=render_mode, max_steps=max_steps)
        m = self.model
        self._panel_body = m.body("panel").id
        self._plug_body = m.body("plug").id
        self._button_jnt = m.joint("button_slide").id
        self._button_q = int(m.jnt_qposadr[self._button_jnt])
        self._button_v = int(m.jnt_dofadr[self._button_jnt])
        plug = m.joint("plug")
        self._plug_q, self._plug_v = int(plug.qposadr[0]), int(plug.dofadr[0])
        self._socket_site = m.site("socket").id
        self._tip_site = m.site("plug_tip").id
        self._handle_site = m.site("plug_handle").id
        self._face_site = m.site("button_face").id
        self.armed = False
        self.order_fault = False

    # ---- randomization ----------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        """Panel pose, button spring/friction, plug pose, drift and tumble (ranges in the
        module docstring); clears the socket's ``armed`` and ``order_fault`` latches."""
        m, d = self.model, self.data
        m.body_pos[self._panel_body] = PANEL_POS_M + rng.uniform(
            -PANEL_JITTER_M, PANEL_JITTER_M, 3)
        yaw = rot.axisangle_to_quat(np.array([0.0, 0.0, rng.uniform(-PANEL_YAW_RAD,
                                                                      PANEL_YAW_RAD)]))
        pitch = rot.axisangle_to_quat(np.array([0.0, rng.uniform(-PANEL_PITCH_RAD,
                                                                 PANEL_PITCH_RAD), 0.0]))
        m.body_quat[self._panel_body] = rot.quat_mul(yaw, rot.quat_mul(pitch, _PANEL_QUAT0))
        m.jnt_stiffness[self._button_jnt] = rng.uniform(*BUTTON_STIFFNESS)
        m.dof_frictionloss[self._button_v] = rng.uniform(*BUTTON_FRICTION)
        d.qpos[self._button_q] = 0.0
        d.qvel[self._button_v] = 0.0
        pos = PLUG_CENTER_M + rng.uniform(-PLUG_JITTER_M, PLUG_JITTER_M, 3)
        quat = rot.random_quat(rng)
        linvel = _unit(rng) * rng.uniform(*DRIFT_SPEED_MPS)
        angvel = _unit(rng) * rng.uniform(0.0, MAX_TUMBLE_RADPS)
        self.set_free_body("plug", pos, quat, linvel, angvel)
        self.armed = False
        self.order_fault = False

    # ---- task state (valid after mj_forward / a step) ---------------------------------
    @property
    def button_travel(self) -> float:
        """Button travel into the panel, m (0 = out)."""
        return float(self.data.qpos[self._button_q])

    def socket_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mouth centre m, unit axis n)`` of the socket, world frame; ``n`` points out
        of the panel (the plug goes in along ``-n``)."""
        d = self.data
        return d.site_xpos[self._socket_site].copy(), d.xmat[self._panel_body][[2, 5, 8]]

    def plug_axis(self) -> np.ndarray:
        """Plug axis (pin tip -> handle), unit, world frame."""
        return self.data.xmat[self._plug_body][[2, 5, 8]]

    def plug_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """``(linear m/s of the body origin, angular rad/s)`` of the plug, world frame."""
        v = self.data.qvel[self._plug_v : self._plug_v + 6]
        return v[:3].copy(), self.data.xmat[self._plug_body].reshape(3, 3) @ v[3:]

    def insertion_error(self) -> tuple[float, float, float]:
        """``(depth m, radial m, tilt rad)`` of the plug tip in the socket (definitions
        in the module docstring)."""
        s, n = self.socket_frame()
        rel = self.data.site_xpos[self._tip_site] - s
        depth = -float(rel @ n)
        radial = float(np.linalg.norm(rel + depth * n))
        tilt = float(np.arccos(np.clip(self.plug_axis() @ n, -1.0, 1.0)))
        return depth, radial, tilt

    def _update_latches(self, depth: float, radial: float) -> None:
        """Arm on a full enough press; flag (or clear) a plug in the bore while unarmed."""
        if self.button_travel >= ARM_TRAVEL_M:
            self.armed = True
        in_bore = depth > 0.0 and radial < BORE_HALF_M
        if not in_bore:
            self.order_fault = False
        elif not self.armed:
            self.order_fault = True

    # ---- observation and evaluation ---------------------------------------------------
    def _features(self) -> np.ndarray:
        d = self.data
        s, n = self.socket_frame()
        lin, ang = self.plug_velocity()
        tip = d.site_xpos[self._tip_site] - s
        rel, v_h = self.rel_grip(d.xpos[self._plug_body])[0], self.site_velocity("plug_handle")
        return np.concatenate([
            [self.button_travel, float(self.armed), float(self.order_fault)],
            self.button_rest_pos(), d.xpos[self._plug_body], self.plug_axis(), lin, ang,
            s, n, tip,
            self.in_gripper(self.button_rest_pos() - self.gripper_pos), self.in_gripper(n),
            rel, *self.rel_grip(d.site_xpos[self._handle_site]), v_h,
            self.in_gripper(self.plug_axis()),
            *(self.in_gripper(x) for x in (rel, lin, ang, v_h, tip)),
        ])

    def button_rest_pos(self) -> np.ndarray:
        """Centre of the button cap's face at zero travel, m, world frame."""
        _, n = self.socket_frame()
        return self.data.site_xpos[self._face_site] + self.button_travel * n

    def _evaluate(self) -> tuple[float, bool]:
        depth, radial, tilt = self.insertion_error()
        self._update_latches(depth, radial)
        go = self.armed and not self.order_fault
        success = bool(go and depth >= DEPTH_MIN_M and radial < RADIAL_TOL_M
                       and tilt < ANGLE_TOL_RAD)
        d = self.data
        if self.armed:
            press = 1.0
        else:
            gap = float(np.linalg.norm(self.gripper_pos - d.site_xpos[self._face_site]))
            press = 0.5 * (1.0 - np.tanh(10.0 * gap)) + 0.5 * min(
                max(self.button_travel / ARM_TRAVEL_M, 0.0), 1.0)
        reward = 0.3 * press
        if go:
            reach = 1.0 - np.tanh(10.0 * float(np.linalg.norm(
                self.grip_pos - d.site_xpos[self._handle_site])))
            held = 1.0 if self.grasped == "plug" else 0.0
            align = (1.0 - np.tanh(10.0 * radial)) * (1.0 - np.tanh(2.0 * tilt))
            insert = min(max(depth / DEPTH_MIN_M, 0.0), 1.0)
            reward += 0.1 * reach + 0.1 * held + 0.25 * align + 0.25 * align * insert
        return float(reward + float(success)), success
