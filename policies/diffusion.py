"""DDPM noise schedule and samplers (torch), epsilon, x0 or v prediction, x0 clamped to [-1, 1].

Cosine schedule (Nichol & Dhariwal 2021), ``K`` steps, offset ``s`` = 0.008:
    alpha_bar(k) = f(k) / f(0),  f(k) = cos^2(((k / K) + s) / (1 + s) * pi / 2)
    beta_k = min(1 - alpha_bar(k + 1) / alpha_bar(k), 0.999),  k = 0 .. K-1
Forward process: x_k = sqrt(ab_k) x_0 + sqrt(1 - ab_k) eps, eps ~ N(0, I), where
``ab_k = prod_{j<=k} (1 - beta_j)`` (step index k = 0 is the least noisy).

DDPM reverse step k -> k-1 (posterior mean and variance, Ho et al. 2020):
    x0_hat = clamp((x_k - sqrt(1 - ab_k) eps_hat) / sqrt(ab_k), -1, 1)
    mu = c0_k x0_hat + ck_k x_k,  var_k = beta_k (1 - ab_{k-1}) / (1 - ab_k)
DDIM (eta = 0) over a decreasing subset of steps, eps re-derived from the clamped x0:
    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps'

Prediction ``epsilon`` (DDPM's): the denoiser outputs eps_hat, as above. Prediction
``sample`` (the x0 parameterisation, Diffusion Policy's ``prediction_type="sample"``): it
outputs the clean chunk itself, trained on ``|| out - x_0 ||^2``, and
``x0_hat = clamp(out, -1, 1)``; the reverse steps are otherwise the same. Prediction ``v``
(Salimans & Ho 2022, "velocity"): it outputs ``v = sqrt(ab_k) eps - sqrt(1 - ab_k) x_0``,
trained on ``|| out - v ||^2``, and ``x0_hat = clamp(sqrt(ab_k) x_k - sqrt(1 - ab_k) out,
-1, 1)``: at the noisiest steps the output is nearly -x0 itself, at the least noisy ones
x_k carries the estimate and the network's error enters scaled by sqrt(1 - ab_k).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Denoise = Callable[[torch.Tensor, int], torch.Tensor]  # (x_k, k) -> eps_hat or x0_hat
PREDICTIONS = ("epsilon", "sample", "v")


@dataclass(frozen=True)
class Schedule:
    """Per-step constants of a K-step cosine DDPM schedule (float64 tensors of length K)
    and what the denoiser predicts (``PREDICTIONS``)."""

    betas: torch.Tensor
    alpha_bars: torch.Tensor
    prediction: str = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"got {self.prediction!r}")

    @property
    def steps(self) -> int:
        return int(self.betas.shape[0])

    @classmethod
    def cosine(cls, steps: int = 20, s: float = 0.008, prediction: str = "epsilon") -> Schedule:
        k = torch.arange(steps + 1, dtype=torch.float64)
        f = torch.cos(((k / steps) + s) / (1 + s) * math.pi / 2) ** 2
        ab = f / f[0]
        betas = torch.clamp(1 - ab[1:] / ab[:-1], max=0.999)
        return cls(betas=betas, alpha_bars=torch.cumprod(1 - betas, 0), prediction=prediction)

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """x_k for a batch: ``k`` holds one step index per row."""
        ab = self.alpha_bars.to(x0.dtype)[k].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def target(self, x0: torch.Tensor, eps: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output at steps ``k`` (one per row): ``eps``,
        ``x0`` or ``v``."""
        if self.prediction == "sample":
            return x0
        if self.prediction == "v":
            ab = self.alpha_bars.to(x0.dtype)[k].view(-1, *([1] * (x0.dim() - 1)))
            return ab.sqrt() * eps - (1 - ab).sqrt() * x0
        return eps

    def x0_hat(self, x: torch.Tensor, out: torch.Tensor, k: int) -> torch.Tensor:
        """The clamped clean estimate from x_k and the denoiser's output at step k."""
        if self.prediction == "sample":
            return out.clamp(-1.0, 1.0)
        ab = float(self.alpha_bars[k])
        if self.prediction == "v":
            return (math.sqrt(ab) * x - math.sqrt(1 - ab) * out).clamp(-1.0, 1.0)
        return ((x - math.sqrt(1 - ab) * out) / math.sqrt(ab)).clamp(-1.0, 1.0)

    def ddpm_step(self, x: torch.Tensor, eps: torch.Tensor, k: int,
                  noise: torch.Tensor | None) -> torch.Tensor:
        """One reverse step k -> k-1; ``noise`` is ignored at k = 0."""
        x0 = self.x0_hat(x, eps, k)
        ab = float(self.alpha_bars[k])
        ab_prev = float(self.alpha_bars[k - 1]) if k > 0 else 1.0
        beta = float(self.betas[k])
        c0 = math.sqrt(ab_prev) * beta / (1 - ab)
        ck = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        mean = c0 * x0 + ck * x
        if k == 0 or noise is None:
            return mean
        var = beta * (1 - ab_prev) / (1 - ab)
        return mean + math.sqrt(var) * noise

    def ddim_step(self, x: torch.Tensor, eps: torch.Tensor, k: int, k_prev: int) -> torch.Tensor:
        """Deterministic DDIM step from k to k_prev (k_prev = -1: the clean sample)."""
        x0 = self.x0_hat(x, eps, k)
        if k_prev < 0:
            return x0
        ab, ab_prev = float(self.alpha_bars[k]), float(self.alpha_bars[k_prev])
        eps_c = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        return math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps_c


def ddim_subset(steps: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over ``0 .. steps-1``, noisiest first."""
    if not 1 <= count <= steps:
        raise ValueError(f"DDIM step count must be in 1..{steps}, got {count}")
    idx = torch.linspace(0, steps - 1, count).round().long().tolist()
    return sorted(set(idx), reverse=True)


def sample(schedule: Schedule, denoise: Denoise, shape: tuple[int, ...],
           generator: torch.Generator | None = None, ddim_steps: int | None = None,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw x_{K-1} ~ N(0, I) and denoise it to a clean sample in [-1, 1].

    ``ddim_steps = None`` runs all K DDPM steps (stochastic); an integer runs DDIM over
    that many evenly spaced steps (deterministic after the initial draw).
    """
    x = torch.randn(shape, generator=generator, dtype=dtype)
    if ddim_steps is None:
        for k in range(schedule.steps - 1, -1, -1):
            noise = torch.randn(shape, generator=generator, dtype=dtype) if k > 0 else None
            x = schedule.ddpm_step(x, denoise(x, k), k, noise)
        return x
    ks = ddim_subset(schedule.steps, ddim_steps)
    for i, k in enumerate(ks):
        k_prev = ks[i + 1] if i + 1 < len(ks) else -1
        x = schedule.ddim_step(x, denoise(x, k), k, k_prev)
    return x
