"""The world-model hook: a compact model beside the policy screens each action chunk.

The executive calls ``guard.screen(obs, chunk)`` before executing a chunk. A guard
returns a ``Verdict``: ``accept`` (False: the chunk is vetoed and the robot holds position
instead), an ``anomaly`` score (e.g. the model's recent prediction error; above the
guard's threshold the executive raises an ``anomaly`` event) and a ``reason``. The
distilled student world model (its own issue) implements this interface; until then
``NoGuard`` accepts everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Verdict:
    accept: bool = True
    anomaly: float = 0.0
    flagged: bool = False
    reason: str = ""


class WorldModelGuard(Protocol):
    def screen(self, obs: np.ndarray, chunk: np.ndarray) -> Verdict:
        """``obs`` (obs_dim,), ``chunk`` (chunk, act_dim) in raw action units."""
        ...


class NoGuard:
    """Accepts every chunk (no world model loaded)."""

    def screen(self, obs: np.ndarray, chunk: np.ndarray) -> Verdict:
        return Verdict()
