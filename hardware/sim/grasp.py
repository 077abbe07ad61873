"""Grasp model of the cabin: where and how the parallel gripper may hold a task body.

A ``Grasp`` names a handle site on a body and the gripper orientations that hold it:

- ``knob`` (a short cylinder on the handle axis ``a``): the gripper's z axis (from the grip
  point up to the palm) along ``a``, any spin about it;
- ``bar`` (a rod along ``b``, approached along ``a``, with ``a`` perpendicular to ``b``):
  the gripper's y axis along +-``b`` (fingers, which close along the gripper x axis, on
  either side of the rod) and its z axis within ``max_tilt_rad`` of ``a``, tilted about
  ``b`` only.

``a`` and ``b`` are given in the body frame. The weld engages only if, while the fingers
are still closing, the grip point is within ``POS_TOL_M`` of the handle site and the
gripper's orientation is within ``ANGLE_TOL_RAD`` of such a grasp (for a bar: the y axis
within the tolerance of +-``b`` and the tilt about ``b`` within ``max_tilt_rad`` plus the
tolerance). On engaging, the body is held at the *canonical* pose nearest to the one
found: grip point on the site, gripper axes exactly as above (spin about a knob, the
sign of a bar and a tilt within ``max_tilt_rad`` kept as found). This models a gripper
whose fingers centre a handle as they close; the weld constraint pulls body and gripper
into that pose within a few physics steps (its time constant is 10 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sim import rotations as rot

POS_TOL_M = 0.025
ANGLE_TOL_RAD = np.deg2rad(30.0)


@dataclass(frozen=True)
class Grasp:
    """A valid way to hold ``body`` at handle ``site`` (see the module docstring)."""

    body: str
    site: str
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    bar: tuple[float, float, float] | None = None
    max_tilt_rad: float = 0.0

    def world_axes(self, body_mat: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(a, b)`` in the world frame for the body's rotation matrix (``b`` None for a
        knob)."""
        a = body_mat @ np.asarray(self.axis, float)
        b = None if self.bar is None else body_mat @ np.asarray(self.bar, float)
        return a, b


def _bar_tilt(gz: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Signed angle (rad) about ``b`` from ``a`` to the projection of ``gz`` on the plane
    normal to ``b``."""
    p = gz - (gz @ b) * b
    return float(np.arctan2(np.cross(a, p) @ b, a @ p))


def orientation_error(grasp: Grasp, gripper_mat: np.ndarray, body_mat: np.ndarray
                      ) -> float:
    """Angle (rad) between the gripper's orientation and the nearest valid grasp
    orientation of ``grasp`` (0 when it holds the handle as specified)."""
    a, b = grasp.world_axes(body_mat)
    gz = gripper_mat[:, 2]
    if b is None:
        return float(np.arccos(np.clip(gz @ a, -1.0, 1.0)))
    gy = gripper_mat[:, 1]
    off_bar = float(np.arccos(np.clip(abs(gy @ b), -1.0, 1.0)))
    excess_tilt = max(0.0, abs(_bar_tilt(gz, a, b)) - grasp.max_tilt_rad)
    return max(off_bar, excess_tilt)


def canonical_gripper(grasp: Grasp, gripper_mat: np.ndarray, body_mat: np.ndarray,
                      site_pos: np.ndarray, grip_offset_m: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(position m, rotation matrix)`` of the gripper body in the canonical grasp
    nearest to ``gripper_mat``: the smallest rotation that makes the orientation valid,
    and the grip point (``grip_offset_m`` below the palm along the gripper's -z) on
    ``site_pos``."""
    a, b = grasp.world_axes(body_mat)
    r = gripper_mat
    if b is None:
        r = rot.quat_to_mat(rot.axisangle_to_quat(rot.rotation_between(r[:, 2], a))) @ r
    else:
        target_y = b if r[:, 1] @ b >= 0.0 else -b
        r = rot.quat_to_mat(rot.axisangle_to_quat(rot.rotation_between(r[:, 1], target_y))) @ r
        tilt = _bar_tilt(r[:, 2], a, b)
        keep = float(np.clip(tilt, -grasp.max_tilt_rad, grasp.max_tilt_rad))
        r = rot.quat_to_mat(rot.axisangle_to_quat(b * (keep - tilt))) @ r
    return np.asarray(site_pos, float) + grip_offset_m * r[:, 2], r
