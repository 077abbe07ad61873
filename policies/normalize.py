"""Affine normalisation to about [-1, 1], per dimension: y = 2 (x - lo) / (hi - lo) - 1.

Two ways to choose ``lo`` and ``hi`` from data:

- ``MinMax.fit``: the extremes (actions: every demonstrated action maps into [-1, 1], so
  the sampler's clamp of the clean chunk to [-1, 1] never cuts one off);
- ``MinMax.fit_robust``: the ``ROBUST_Q`` and ``1 - ROBUST_Q`` quantiles, widened by
  ``ROBUST_MARGIN`` of their span on each side (observations: a few contact transients
  no longer squeeze the bulk of a field into a sliver of the range; rarer values map a
  little outside [-1, 1], which the network takes as it comes). A dimension whose robust
  span is below ``CONSTANT_SPAN`` (a constant in the data, such as a fault flag the
  demonstrations never raise) gets ``lo, hi = c -+ 1`` around its value ``c``, so it
  maps to ``x - c``: a change the data never showed still reaches the policy.

Dimensions whose stored range is below ``MIN_RANGE`` map to 0 (checkpoints written before
``fit_robust`` existed store constants that way).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_RANGE = 1e-6
ROBUST_Q = 0.005
ROBUST_MARGIN = 0.05
CONSTANT_SPAN = 1e-4


class MinMax(nn.Module):
    """Stores ``lo`` and ``hi`` as buffers, so they travel in the checkpoint."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("lo", -torch.ones(dim))
        self.register_buffer("hi", torch.ones(dim))

    @classmethod
    def fit(cls, data: torch.Tensor) -> MinMax:
        """Range = the data's extremes."""
        norm = cls(data.shape[-1])
        flat = data.reshape(-1, data.shape[-1]).float()
        norm.lo.copy_(flat.min(0).values)
        norm.hi.copy_(flat.max(0).values)
        return norm

    @classmethod
    def fit_robust(cls, data: torch.Tensor) -> MinMax:
        """Range = widened central quantiles; constants get a unit half-range."""
        norm = cls(data.shape[-1])
        flat = data.reshape(-1, data.shape[-1]).double().numpy()
        lo, mid, hi = np.quantile(flat, [ROBUST_Q, 0.5, 1.0 - ROBUST_Q], axis=0)
        pad = ROBUST_MARGIN * (hi - lo)
        lo, hi = lo - pad, hi + pad
        const = (hi - lo) < CONSTANT_SPAN
        norm.lo.copy_(torch.as_tensor(np.where(const, mid - 1.0, lo)))
        norm.hi.copy_(torch.as_tensor(np.where(const, mid + 1.0, hi)))
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
