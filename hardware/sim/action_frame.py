"""The frame a policy's action chunk is expressed in: the cabin's world frame, or the
gripper's own frame at the start of the chunk.

A cabin action (``CabinEnv``) is ``(dx, dy, dz, droll, dpitch, dyaw, grip)``: a position
step and a rotation vector, both in the world frame. In zero g nothing but the cabin's
fixtures singles out a world direction, so catching a free body is the same manoeuvre
in every orientation; in world coordinates a learner has to learn that symmetry from the
demonstrations, in the gripper's coordinates it is built in. With ``R`` the gripper's
rotation matrix at the start of a chunk (columns: its x, y = z x x and z axes in the
world frame, from the observation's ``gripper_rot6``), every action of the chunk is

    a_g = R^T a_w,   a_w = R a_g

on its position part and its rotation part alike (a rotation vector turns like any
vector); the grip is left as it is. One ``R`` serves the whole chunk, so the chunk is
known from the observation it was planned on, and the transform is exact (``R`` is
orthonormal: lengths, and so the action bounds' meaning, are kept).

Used by the trainer (targets into the frame), the policy, the compiler's closed-loop
runs and the runtime (chunks back into the world frame before they reach the actuators).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hardware.errors import SpikeflightError

if TYPE_CHECKING:  # the runtime imports this module: no gymnasium (hardware.sim.layout) here
    from hardware.sim.layout import ObsField

FRAMES = ("world", "gripper")
ROT6_FIELD = "gripper_rot6"
VECTOR_PARTS = (slice(0, 3), slice(3, 6))  # position step, rotation vector


class ActionFrameError(SpikeflightError):
    """An action frame a task's observations cannot give."""


@dataclass(frozen=True)
class ActionFrame:
    """``name``: ``world`` (the identity) or ``gripper``; ``rot6``: where the gripper's
    x and z axes (6 values, world frame) start in the observation vector."""

    name: str = "world"
    rot6: int = -1

    def __post_init__(self) -> None:
        if self.name not in FRAMES:
            raise ActionFrameError(f"action frame must be one of {', '.join(FRAMES)}, "
                                   f"got {self.name!r}")
        if self.name == "gripper" and self.rot6 < 0:
            raise ActionFrameError("the gripper action frame needs the observation index "
                                   f"of {ROT6_FIELD}")

    @classmethod
    def for_layout(cls, name: str, layout: Sequence[ObsField] | None) -> ActionFrame:
        """The frame ``name`` for observations laid out as ``layout`` (``None``: an
        environment without named fields, which only the world frame fits)."""
        if name == "world":
            return cls()
        by_name = {f.name: f for f in layout or []}
        f = by_name.get(ROT6_FIELD)
        if f is None or f.size != 6:
            raise ActionFrameError(f"the {name!r} action frame needs the observation field "
                                   f"{ROT6_FIELD} (6 values), which this task does not have")
        return cls(name, f.start)

    def rotation(self, obs: np.ndarray) -> np.ndarray:
        """``R`` (B, 3, 3) of each observation (B, obs_dim): the gripper's axes as
        columns."""
        r6 = np.asarray(obs, np.float64)[:, self.rot6 : self.rot6 + 6]
        x, z = r6[:, :3], r6[:, 3:]
        return np.stack([x, np.cross(z, x), z], axis=-1)

    def _turn(self, obs: np.ndarray, chunk: np.ndarray, inverse: bool) -> np.ndarray:
        out = np.array(chunk, np.float64)
        if self.name == "world":
            return out
        r = self.rotation(np.atleast_2d(obs))
        spec = "bji,bhj->bhi" if inverse else "bij,bhj->bhi"  # R^T a or R a per action
        for part in VECTOR_PARTS:
            out[:, :, part] = np.einsum(spec, r, out[:, :, part])
        return out

    def from_world(self, obs: np.ndarray, chunk: np.ndarray) -> np.ndarray:
        """World-frame chunks (B, H, act_dim) planned on ``obs`` (B, obs_dim) -> this
        frame."""
        return self._turn(obs, chunk, inverse=True)

    def to_world(self, obs: np.ndarray, chunk: np.ndarray) -> np.ndarray:
        """Chunks (B, H, act_dim) in this frame, planned on ``obs`` -> the world frame."""
        return self._turn(obs, chunk, inverse=False)
