"""Named fields of an observation vector, and environments whose observations come as a
gymnasium ``Dict``.

``ObsField`` is one named slice of the flat vector; ``obs_fields(env)`` finds the layout an
environment (or one of its wrappers) publishes with ``obs_layout()``. ``FlatDict`` turns a
``Dict`` observation space of ``Box`` fields (gymnasium-robotics' ``observation`` /
``achieved_goal`` / ``desired_goal``, robosuite without its ``GymWrapper``) into one
float64 vector: the fields flattened and concatenated in the space's key order (the
order gymnasium's ``Dict`` keeps: sorted, unless it was built from an ordered mapping),
and publishes that order as its layout, so demonstrations, policies and the runtime see
the flat vector and files name every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from hardware.errors import SpikeflightError


@dataclass(frozen=True)
class ObsField:
    """One named slice of the observation vector."""

    name: str
    start: int
    size: int
    doc: str

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


def obs_fields(env: gym.Env) -> list[ObsField] | None:
    """The fields ``env`` publishes (``obs_layout()`` on it, a wrapper or the unwrapped
    env), or None."""
    try:
        layout = env.get_wrapper_attr("obs_layout")
    except AttributeError:
        return None
    return list(layout()) if callable(layout) else None


class DictSpaceError(SpikeflightError):
    """A ``Dict`` observation space that cannot be flattened into named fields."""


class FlatDict(gym.ObservationWrapper):
    """``env`` with its ``Dict`` observations as one float64 vector (see the module)."""

    def __init__(self, env: gym.Env, name: str) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Dict)
        if not space.spaces:
            raise DictSpaceError(f"{name!r}: its Dict observation space has no fields")
        fields, start = [], 0
        for key, sub in space.spaces.items():
            if not isinstance(sub, gym.spaces.Box):
                raise DictSpaceError(f"{name!r}: observation field {key!r} is "
                                     f"{type(sub).__name__}; every field must be a Box")
            size = int(np.prod(sub.shape))
            fields.append(ObsField(str(key), start, size, f"{key} {sub.shape} (Dict field)"))
            start += size
        self._fields = fields
        self.observation_space = gym.spaces.Box(
            np.concatenate([np.ravel(s.low) for s in space.spaces.values()]).astype(np.float64),
            np.concatenate([np.ravel(s.high) for s in space.spaces.values()]).astype(np.float64),
            dtype=np.float64)

    def obs_layout(self) -> list[ObsField]:
        return list(self._fields)

    def observation(self, observation: Any) -> np.ndarray:
        """The flat vector; a missing field or one of the wrong size is a
        ``DictSpaceError`` naming it."""
        if not isinstance(observation, dict):
            raise DictSpaceError(f"the env returned {type(observation).__name__}, not the "
                                 "dict its observation space declares")
        parts = []
        for f in self._fields:
            if f.name not in observation:
                raise DictSpaceError(f"the env's observation lacks the field {f.name!r}")
            value = np.asarray(observation[f.name], np.float64)
            if value.size != f.size:
                raise DictSpaceError(f"observation field {f.name!r} has {value.size} values; "
                                     f"its space declares {f.size}")
            parts.append(value.ravel())
        return np.concatenate(parts)
