"""Quaternion helpers (wxyz, unit, Hamilton product, world-frame rotation vectors)."""

from __future__ import annotations

import numpy as np


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def axisangle_to_quat(v: np.ndarray) -> np.ndarray:
    """Rotation vector ``v = axis * angle`` (rad) to a unit quaternion."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    half = 0.5 * angle
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(v) / angle])


def quat_to_axisangle(q: np.ndarray) -> np.ndarray:
    """Unit quaternion to the shortest rotation vector (rad), angle in [0, pi]."""
    q = np.asarray(q, dtype=float)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return np.zeros(3)
    return 2.0 * np.arctan2(s, q[0]) * q[1:] / s


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector taking ``current`` to ``target`` (rad)."""
    return quat_to_axisangle(quat_mul(target, quat_conj(current)))


def random_quat(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed unit quaternion."""
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def random_unit(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed unit 3-vector."""
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """Rotation matrix (3x3) to a unit quaternion (wxyz)."""
    import mujoco

    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(mat, dtype=np.float64).reshape(9))
    return q


def rotation_between(from_axis: np.ndarray, to_axis: np.ndarray) -> np.ndarray:
    """Shortest rotation vector (rad, world) turning unit ``from_axis`` onto ``to_axis``;
    for opposite axes, a half turn about an axis perpendicular to ``from_axis``."""
    c = np.cross(from_axis, to_axis)
    s = float(np.linalg.norm(c))
    angle = float(np.arctan2(s, float(np.dot(from_axis, to_axis))))
    if s > 1e-9:
        return c / s * angle
    if angle < 1e-6:
        return np.zeros(3)
    perp = np.cross(from_axis, [1.0, 0.0, 0.0])
    if np.linalg.norm(perp) < 1e-6:
        perp = np.cross(from_axis, [0.0, 1.0, 0.0])
    return perp / np.linalg.norm(perp) * angle
