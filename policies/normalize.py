"""Min-max normalisation to [-1, 1], per dimension: y = 2 (x - lo) / (hi - lo) - 1.

Dimensions whose range is below ``MIN_RANGE`` (constants in the data) map to 0.
"""

from __future__ import annotations

import torch
from torch import nn

MIN_RANGE = 1e-6


class MinMax(nn.Module):
    """Stores ``lo`` and ``hi`` as buffers, so they travel in the checkpoint."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("lo", -torch.ones(dim))
        self.register_buffer("hi", torch.ones(dim))

    @classmethod
    def fit(cls, data: torch.Tensor) -> MinMax:
        norm = cls(data.shape[-1])
        flat = data.reshape(-1, data.shape[-1]).float()
        norm.lo.copy_(flat.min(0).values)
        norm.hi.copy_(flat.max(0).values)
        return norm

    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.hi - self.lo
        ok = span > MIN_RANGE
        return torch.where(ok, span, torch.ones_like(span)), ok

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        span, ok = self._scale()
        return torch.where(ok, 2 * (x - self.lo) / span - 1, torch.zeros_like(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        span, ok = self._scale()
        return torch.where(ok, (y + 1) / 2 * span + self.lo, self.lo.expand_as(y))
