"""Scripted expert of the ``drawer`` task: open the drawer, stow the item, close it.

It reads the full state of its ``DrawerEnv`` every step (drawer opening and handle,
the item's pose and velocities, the grasp) and derives its phase from it
(``phase_from_state``); nothing is remembered between steps, so the item's drift and
tumble (it keeps moving while the drawer is opened) are tracked, not predicted, and the
expert can take over from any state.

Phases, with the state that selects each (``inside``: the item centre is inside the
drawer interior with 5 mm to spare; "corridor": the grip point within 2 cm of the
straight approach line, at most the stand-off + 2 cm out, attitude within 0.15 rad):

0. REACH_HANDLE (nothing held, item outside, drawer open less than ``MIN_OPEN_M``, grip
   point outside the corridor above the handle): servo the grip point to ``STANDOFF_M``
   above the drawer handle, gripper pointing down (fingers across the bar), open.
1. GRASP_HANDLE (as 0, in the corridor): descend onto the handle site, close within
   ``CLOSE_TOL_M``.
2. PULL (holding the handle, item outside, opening below ``PULL_TO_M`` - 1 cm): move the
   handle along the slide axis towards the opening ``PULL_TO_M`` (proportional, at most
   ``PULL_STEP_M`` per step, slowing near the end).
3. RETREAT (holding the handle with the drawer pulled open): open the gripper, backing
   away towards ``RETREAT_M`` out from and above the handle (from there on the routing
   of REACH_ITEM takes the palm clear of the drawer face).
4. REACH_ITEM (nothing held, item outside, drawer open at least ``MIN_OPEN_M``, grip
   point outside the item corridor): servo to a pre-grasp point ``ITEM_STANDOFF_M`` out
   from the item handle along the approach axis, the gripper pointing along it into the
   handle, with a velocity feed-forward of the handle's drift and tumble. The approach
   axis is the item's +z (the handle's outward side), tilted about the carry loop (item
   y), away from the cabinet, by 30 or 60 deg when the palm would otherwise have to sit
   inside the cabinet's clearance box (the grasp model accepts such tilts about the
   loop).
5. GRASP_ITEM (as 4, in the corridor): move onto the handle (with feed-forward), close
   within ``CLOSE_TOL_M``.
6. CARRY (holding the item, not yet over the slot): turn it upright (item +z up, yaw the
   nearest multiple of 90 deg, so it fits the drawer) and move it to a hover point
   ``HOVER_M`` above the slot in the open part of the drawer, around the cabinet (see
   routing below).
7. PLACE (holding the item, its centre within 2 cm of the slot's vertical line and no
   higher than the hover point + 2 cm): lower the item to the slot (drawer frame: centre
   of the exposed interior length, y = 0, 0.03 m above the floor).
8. RELEASE (holding the item within ``PLACE_TOL_M`` of the slot and still, or holding it
   outside the drawer while the drawer is not open enough; or, holding nothing with the
   item inside, the grip point still within 3 cm of the item handle's vertical line and
   less than ``RETREAT_M`` above it): open the gripper, then rise straight up.
9. REACH_HANDLE2 / 10. GRASP_HANDLE2 (nothing held, item inside): as 0 / 1.
11. PUSH (holding the handle, item inside): push the drawer closed (target opening
    -0.01 m, i.e. against the stop), then open the gripper once the opening is below
    ``RELEASE_AT_M``: that step the criterion holds.

Routing: the housing, the drawer face and its handle form an axis-aligned box obstacle
(recomputed each step at the current opening); while the item floats free, its
world-aligned bounding box is a second obstacle for the palm (so the palm does not kick
it away). Free-space moves of the palm (phases 0, 4, 9; boxes inflated by
``PALM_MARGIN_M``) and of the held item (phase 6; ``ITEM_MARGIN_M``) go straight when the
segment clears the boxes, else via the shortest path over at most two corners / edge
midpoints of the inflated boxes; a box containing the goal is ignored (the handle is on
it), and from inside a box the move first steps out through its nearest face. Only the
next waypoint is used, and the plan is redone every step.

Recovery needs no special case: a lost item or handle, a drawer that slid shut, or an
item knocked out of the drawer simply select the phase that state calls for.
"""

from __future__ import annotations

import numpy as np

from hardware.sim import rotations as rot
from hardware.sim.cabin import MAX_DPOS_M, MAX_DROT_RAD
from hardware.sim.experts.base import Expert, in_corridor, servo, turn_towards
from hardware.sim.scene import CONTROL_HZ, GRIP_OFFSET_M
from hardware.sim.tasks.drawer import INTERIOR_LO_M, ITEM_HALF_M, DrawerEnv

(REACH_HANDLE, GRASP_HANDLE, PULL, RETREAT, REACH_ITEM, GRASP_ITEM, CARRY, PLACE, RELEASE,
 REACH_HANDLE2, GRASP_HANDLE2, PUSH) = range(12)

DT_S = 1.0 / CONTROL_HZ
STANDOFF_M = 0.06
ITEM_STANDOFF_M = 0.06
CORRIDOR_M = 0.02
CORRIDOR_ROT_RAD = 0.15
CLOSE_TOL_M = 0.008
PULL_TO_M = 0.18
MIN_OPEN_M = 0.15
PULL_STEP_M = 0.015
PUSH_TO_M = -0.01
RELEASE_AT_M = 0.004
RETREAT_M = 0.07
OVER_SLOT_M = 0.02
PLACE_TOL_M = 0.012
STILL_M_S = 0.02
CARRY_STEP_M = 0.03
PALM_MARGIN_M = 0.05  # obstacle inflation for the palm (half-diagonal 0.043 m)
ITEM_MARGIN_M = 0.08  # obstacle inflation for the held item (half-diagonal 0.065 m)
WAYPOINT_PAD_M = 0.02
TILTS_RAD = (0.0, np.deg2rad(30.0), np.deg2rad(60.0))
HOVER_M = 0.21

_DOWN = np.array([1.0, 0.0, 0.0, 0.0])
_YAW_180 = np.array([0.0, 0.0, 0.0, 1.0])


def _nearest(candidates: list[np.ndarray], current: np.ndarray) -> np.ndarray:
    """The candidate quaternion closest (smallest rotation) to ``current``."""
    errs = [np.linalg.norm(rot.quat_error(q, current)) for q in candidates]
    return candidates[int(np.argmin(errs))]


def _hits_box(p0: np.ndarray, p1: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For segments ``p0[i]``-``p1[i]`` (arrays of shape (n, 3), m), whether each one
    intersects the axis-aligned box ``[lo, hi]`` (slab test)."""
    d = p1 - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p0) / d
        t2 = (hi - p0) / d
    parallel = d == 0.0
    inside_slab = (p0 >= lo) & (p0 <= hi)
    tmin = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t1, t2))
    tmax = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t1, t2))
    t_in, t_out = tmin.max(axis=1), tmax.min(axis=1)
    return (t_in <= t_out) & (t_out >= 0.0) & (t_in <= 1.0)


def _box_vertices(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners and 12 edge midpoints of the box ``[lo, hi]``, shape (20, 3)."""
    levels = np.stack([lo, 0.5 * (lo + hi), hi])  # (3 levels, 3 axes)
    pts = []
    for i in range(3):
        for j in range(3):
            for k in range(3):
                if (i == 1) + (j == 1) + (k == 1) <= 1:
                    pts.append([levels[i, 0], levels[j, 1], levels[k, 2]])
    return np.array(pts)


def _hits_any(p0: np.ndarray, p1: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]]
              ) -> np.ndarray:
    """Whether each segment ``p0[i]``-``p1[i]`` (m) intersects any of ``boxes``."""
    hit = np.zeros(len(p0), dtype=bool)
    for lo, hi in boxes:
        hit |= _hits_box(p0, p1, lo, hi)
    return hit


def _inside(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    return bool(np.all(p > lo) and np.all(p < hi))


def _next_waypoint(start: np.ndarray, goal: np.ndarray,
                   boxes: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """First waypoint of the shortest path from ``start`` to ``goal`` (m) around the
    axis-aligned obstacle ``boxes`` (``(lo, hi)`` pairs), via at most two corners / edge
    midpoints of the boxes inflated by ``WAYPOINT_PAD_M``. Boxes containing the goal are
    ignored (the goal is next to them by design); from inside a box, the nearest point
    just outside it; the goal itself when nothing better is found."""
    boxes = [(lo, hi) for lo, hi in boxes if not _inside(goal, lo, hi)]
    for lo, hi in boxes:
        if _inside(start, lo, hi):  # step out through the nearest face
            gaps = np.concatenate([start - lo, hi - start])
            k = int(np.argmin(gaps))
            out = start.copy()
            out[k % 3] = lo[k] - WAYPOINT_PAD_M if k < 3 else hi[k - 3] + WAYPOINT_PAD_M
            return out
    if not boxes or not _hits_any(start[None], goal[None], boxes)[0]:
        return goal
    v = np.concatenate([_box_vertices(lo - WAYPOINT_PAD_M, hi + WAYPOINT_PAD_M)
                        for lo, hi in boxes])
    v = v[[not any(_inside(p, lo, hi) for lo, hi in boxes) for p in v]]
    n = len(v)
    ok_s = ~_hits_any(np.repeat(start[None], n, 0), v, boxes)
    ok_g = ~_hits_any(v, np.repeat(goal[None], n, 0), boxes)
    ok_vv = ~_hits_any(np.repeat(v, n, 0), np.tile(v, (n, 1)), boxes).reshape(n, n)
    d_s = np.linalg.norm(v - start, axis=1)
    d_g = np.linalg.norm(v - goal, axis=1)
    d_vv = np.linalg.norm(v[:, None] - v[None], axis=2)
    cost1 = np.where(ok_s & ok_g, d_s + d_g, np.inf)
    cost2 = np.where(ok_s[:, None] & ok_vv & ok_g[None, :],
                     d_s[:, None] + d_vv + d_g[None, :], np.inf)
    i1 = int(np.argmin(cost1))
    i2, _ = np.unravel_index(int(np.argmin(cost2)), cost2.shape)
    if min(cost1[i1], cost2.min()) == np.inf:
        return goal
    return v[i1] if cost1[i1] <= cost2.min() else v[i2]


class DrawerExpert(Expert):
    """Waypoint + feedback expert for ``DrawerEnv`` (phases in the module docstring)."""

    PHASES = ("reach_handle", "grasp_handle", "pull", "retreat", "reach_item", "grasp_item",
              "carry", "place", "release", "reach_handle2", "grasp_handle2", "push")

    def __init__(self, env: DrawerEnv) -> None:
        super().__init__(env)
        self.env: DrawerEnv = env

    # ---- helpers ----------------------------------------------------------------------
    def _handle_quat(self) -> np.ndarray:
        """Gripper pointing down, fingers across the bar (yaw 0 or 180 deg, nearest)."""
        return _nearest([_DOWN, _YAW_180], self.env.gripper_quat)

    def _item_approach(self) -> tuple[np.ndarray, np.ndarray]:
        """``(gripper quat, unit approach axis)`` for grasping the item handle: the gripper
        points along ``-axis`` into the handle, its y axis along the carry loop (item y).
        The axis is the item's +z, tilted about the loop towards the drawer's opening
        direction by the smallest of ``TILTS_RAD`` that keeps the pre-grasp palm pose clear
        of the cabinet box. The attitude target turns the gripper's z onto the axis, then
        spins its x onto +-item x (``turn_towards``: no jump at a 180 deg error)."""
        env = self.env
        r_item = env.body_mat("item")
        sign = 1.0 if r_item[:, 0] @ env.open_dir >= 0.0 else -1.0
        lo, hi = self._obstacle(PALM_MARGIN_M)
        handle = env.site_pos("item_handle")
        for tilt in TILTS_RAD:
            turn = rot.quat_to_mat(rot.axisangle_to_quat(r_item[:, 1] * sign * tilt))
            a = turn @ r_item[:, 2]
            palm = handle + (ITEM_STANDOFF_M + GRIP_OFFSET_M) * a
            if not _inside(palm, lo, hi):
                break
        rotvec = turn_towards(env.gripper_mat, a, turn @ r_item[:, 0])
        return rot.quat_mul(rot.axisangle_to_quat(rotvec), env.gripper_quat), a

    def _upright_quat(self) -> np.ndarray:
        """Item orientation upright with the nearest multiple-of-90-deg yaw."""
        cands = [rot.axisangle_to_quat(np.array([0.0, 0.0, k * np.pi / 2])) for k in range(4)]
        return _nearest(cands, self.env.body_quat("item"))

    def _move_item(self, centre: np.ndarray, quat: np.ndarray, max_step_m: float) -> np.ndarray:
        """Action moving the held item towards ``centre`` (m, world) and ``quat`` (wxyz),
        through the gripper (the weld keeps the item's pose relative to it)."""
        env = self.env
        q_g, q_i = env.gripper_quat, env.body_quat("item")
        rel = rot.quat_mul(rot.quat_conj(q_g), q_i)  # item orientation in the gripper frame
        q_g_goal = rot.quat_mul(quat, rot.quat_conj(rel))
        err = rot.quat_error(q_g_goal, q_g)
        a = np.linalg.norm(err)
        if a > 0.3:
            err *= 0.3 / a
        # item centre in the gripper frame, then where the gripper body must be
        r_g = rot.quat_to_mat(q_g)
        offset = r_g.T @ (env.body_pos("item") - env.gripper_pos)
        body_goal = centre - rot.quat_to_mat(rot.quat_mul(rot.axisangle_to_quat(err), q_g)) @ offset
        delta = body_goal - env.gripper_pos
        n = np.linalg.norm(delta)
        if n > max_step_m:
            delta *= max_step_m / n
        action = np.zeros(7)
        action[:3] = delta / MAX_DPOS_M
        action[3:6] = err / MAX_DROT_RAD
        action[6] = 1.0
        return np.clip(action, -1.0, 1.0)

    def _handle_ff(self) -> np.ndarray:
        """Item-handle displacement over one control step from drift and tumble, m."""
        env = self.env
        r = env.site_pos("item_handle") - env.body_pos("item")
        return (env.item_linvel + np.cross(env.item_angvel, r)) * DT_S

    def _slot(self) -> np.ndarray:
        """World target of the item centre inside the open drawer, m."""
        env = self.env
        x = float(np.clip((INTERIOR_LO_M[0] + env.opening) / 2.0, 0.06, 0.10))
        return env.from_drawer(np.array([x, 0.0, INTERIOR_LO_M[2] + ITEM_HALF_M[2] + 0.01]))

    def _obstacle(self, margin_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (lo, hi, m, world) around the housing, the drawer face and
        its handle at the current opening, inflated by ``margin_m``."""
        env = self.env
        cab = env.data.body("cabinet").xpos
        q = env.opening
        lo = cab + np.array([-q - 0.06, -0.17, -0.085]) - margin_m
        hi = cab + np.array([0.282, 0.17, 0.085]) + margin_m
        return lo, hi

    def _item_box(self, margin_m: float) -> tuple[np.ndarray, np.ndarray]:
        """World-axis-aligned bounding box of the item (m), inflated by ``margin_m``."""
        env = self.env
        half = np.abs(rot.quat_to_mat(env.body_quat("item"))) @ ITEM_HALF_M + margin_m
        c = env.body_pos("item")
        return c - half, c + half

    def _palm_route(self, grip_goal: np.ndarray, quat: np.ndarray) -> np.ndarray | None:
        """Grip-point target for the next waypoint of the palm around the cabinet and
        the (free) item, or ``None`` if the palm can go straight to its pose at
        ``grip_goal``/``quat``."""
        env = self.env
        palm_goal = grip_goal + GRIP_OFFSET_M * rot.quat_to_mat(quat)[:, 2]
        boxes = [self._obstacle(PALM_MARGIN_M)]
        if env.grasped != "item":
            boxes.append(self._item_box(PALM_MARGIN_M))
        way = _next_waypoint(env.gripper_pos, palm_goal, boxes)
        if np.allclose(way, palm_goal):
            return None
        return way - GRIP_OFFSET_M * rot.quat_to_mat(env.gripper_quat)[:, 2]

    def _drive_drawer(self, goal_m: float) -> np.ndarray:
        """Holding the handle, move it along the slide towards opening ``goal_m`` (m)."""
        env = self.env
        step = float(np.clip(0.6 * (goal_m - env.opening), -PULL_STEP_M, PULL_STEP_M))
        target = env.site_pos("drawer_handle") + step * env.open_dir
        return servo(env, target, self._handle_quat(), grip=1.0, max_step_m=0.03)

    # ---- phases -----------------------------------------------------------------------
    def _handle_corridor(self) -> bool:
        env = self.env
        return in_corridor(env, env.site_pos("drawer_handle"), np.array([0.0, 0.0, 1.0]),
                           STANDOFF_M + CORRIDOR_M, CORRIDOR_M, self._handle_quat(),
                           CORRIDOR_ROT_RAD)

    def phase_from_state(self) -> int:
        env = self.env
        held = env.grasped
        inside = env.item_inside(margin_m=0.005)
        if held == "item":
            if env.opening < MIN_OPEN_M and not inside:
                return RELEASE
            item, slot = env.body_pos("item"), self._slot()
            if (np.linalg.norm(item - slot) < PLACE_TOL_M
                    and np.linalg.norm(env.item_linvel) < STILL_M_S):
                return RELEASE
            over = np.linalg.norm((item - slot)[:2]) < OVER_SLOT_M
            return PLACE if over and item[2] < slot[2] + HOVER_M + 0.02 else CARRY
        if held == "drawer":
            if inside:
                return PUSH
            return PULL if env.opening < PULL_TO_M - 0.01 else RETREAT
        if inside:
            rel = env.grip_pos - env.site_pos("item_handle")
            if np.linalg.norm(rel[:2]) < 0.03 and rel[2] < RETREAT_M:
                return RELEASE
            return GRASP_HANDLE2 if self._handle_corridor() else REACH_HANDLE2
        if env.opening >= MIN_OPEN_M:
            quat, axis = self._item_approach()
            inside_c = in_corridor(env, env.site_pos("item_handle"), axis,
                                   ITEM_STANDOFF_M + CORRIDOR_M, CORRIDOR_M, quat,
                                   CORRIDOR_ROT_RAD)
            return GRASP_ITEM if inside_c else REACH_ITEM
        return GRASP_HANDLE if self._handle_corridor() else REACH_HANDLE

    def act_in(self, phase: int) -> np.ndarray:
        env = self.env
        if phase in (REACH_HANDLE, REACH_HANDLE2):
            quat = self._handle_quat()
            pre = env.site_pos("drawer_handle") + np.array([0.0, 0.0, STANDOFF_M])
            way = self._palm_route(pre, quat)
            return servo(env, pre if way is None else way, quat, grip=-1.0, max_step_m=0.04,
                         max_rot_rad=0.4)
        if phase in (GRASP_HANDLE, GRASP_HANDLE2):
            handle = env.site_pos("drawer_handle")
            near = np.linalg.norm(env.grip_pos - handle) < CLOSE_TOL_M
            return servo(env, handle, self._handle_quat(), grip=self.closing(near),
                         max_step_m=0.02)
        if phase == PULL:
            return self._drive_drawer(PULL_TO_M)
        if phase == RETREAT:
            up = (env.site_pos("drawer_handle") + RETREAT_M * env.open_dir
                  + np.array([0.0, 0.0, RETREAT_M]))
            return servo(env, up, self._handle_quat(), grip=-1.0, max_step_m=0.03)
        if phase == REACH_ITEM:
            handle = env.site_pos("item_handle")
            quat, axis = self._item_approach()
            pre = handle + ITEM_STANDOFF_M * axis
            way = self._palm_route(pre, quat)
            target, ff = (pre, self._handle_ff()) if way is None else (way, None)
            return servo(env, target, quat, grip=-1.0, max_step_m=0.04, max_rot_rad=0.3,
                         feedforward_m=ff)
        if phase == GRASP_ITEM:
            handle = env.site_pos("item_handle")
            near = np.linalg.norm(env.grip_pos - handle) < CLOSE_TOL_M
            return servo(env, handle, self._item_approach()[0], grip=self.closing(near),
                         max_step_m=0.02, max_rot_rad=0.3, feedforward_m=self._handle_ff())
        if phase == CARRY:
            hover = self._slot() + np.array([0.0, 0.0, HOVER_M])
            way = _next_waypoint(env.body_pos("item"), hover, [self._obstacle(ITEM_MARGIN_M)])
            return self._move_item(way, self._upright_quat(), CARRY_STEP_M)
        if phase == PLACE:
            return self._move_item(self._slot(), self._upright_quat(), 0.015)
        if phase == RELEASE and env.grasped is None:
            return servo(env, env.grip_pos + np.array([0.0, 0.0, 0.03]), grip=-1.0)
        if phase == RELEASE or env.opening < RELEASE_AT_M:  # let go (item, or closed drawer)
            action = np.zeros(7)
            action[6] = -1.0
            return action
        return self._drive_drawer(PUSH_TO_M)
