"""Reverse diffusion on board (numpy, float64): DDPM over all K steps, or DDIM over a subset.

Same equations as the trainer's ``policies/diffusion.py`` (which the runtime may not
import), on the schedule tables the image carries (``betas``, ``alpha_bars``; step k = 0
is the least noisy):

    x0_hat = clip((x_k - sqrt(1 - ab_k) eps) / sqrt(ab_k), -1, 1)
    DDPM:  x_{k-1} = c0 x0_hat + ck x_k + sqrt(var_k) z,   z ~ N(0, I), none at k = 0
           c0 = sqrt(ab_{k-1}) beta_k / (1 - ab_k)
           ck = sqrt(1 - beta_k) (1 - ab_{k-1}) / (1 - ab_k)
           var_k = beta_k (1 - ab_{k-1}) / (1 - ab_k)
    DDIM:  x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps',
           eps' = (x_k - sqrt(ab_k) x0_hat) / sqrt(1 - ab_k)

All randomness comes from a ``numpy.random.Generator`` drawn in a fixed order (x_{K-1},
then one z per DDPM step), so a seed fixes the chunk given the denoiser.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_RANGE = 1e-6  # as the trainer's normaliser: narrower action ranges are constants

EpsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x_k (B, A), k (B,)) -> eps


def ddim_subset(steps: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over 0 .. steps-1, noisiest first."""
    if not 1 <= count <= steps:
        raise ValueError(f"DDIM step count must be in 1..{steps}, got {count}")
    return sorted({int(round(v)) for v in np.linspace(0, steps - 1, count)}, reverse=True)


def unnormalise(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, chunk: int) -> np.ndarray:
    """Normalised chunk (B, chunk * act_dim) in [-1, 1] -> raw actions (B, chunk, act_dim):
    a = (y + 1) / 2 (hi - lo) + lo, or lo where the range was constant in the data."""
    span = hi - lo
    y = x.reshape(x.shape[0], chunk, -1)
    return np.where(span > MIN_RANGE, (y + 1) / 2 * span + lo, lo)


class Sampler:
    def __init__(self, betas: np.ndarray, alpha_bars: np.ndarray) -> None:
        self.betas = np.asarray(betas, np.float64)
        self.alpha_bars = np.asarray(alpha_bars, np.float64)

    @property
    def steps(self) -> int:
        return len(self.betas)

    def x0(self, x: np.ndarray, eps: np.ndarray, k: int) -> np.ndarray:
        ab = self.alpha_bars[k]
        return np.clip((x - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1.0, 1.0)

    def ddpm_step(self, x: np.ndarray, eps: np.ndarray, k: int,
                  z: np.ndarray | None) -> np.ndarray:
        ab, beta = self.alpha_bars[k], self.betas[k]
        ab_prev = self.alpha_bars[k - 1] if k > 0 else 1.0
        mean = (np.sqrt(ab_prev) * beta / (1 - ab)) * self.x0(x, eps, k) \
            + (np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
        if k == 0 or z is None:
            return mean
        return mean + np.sqrt(beta * (1 - ab_prev) / (1 - ab)) * z

    def ddim_step(self, x: np.ndarray, eps: np.ndarray, k: int, k_prev: int) -> np.ndarray:
        x0 = self.x0(x, eps, k)
        if k_prev < 0:
            return x0
        ab, ab_prev = self.alpha_bars[k], self.alpha_bars[k_prev]
        eps_c = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
        return np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * eps_c

    def schedule(self, ddim_steps: int | None) -> list[int]:
        """The denoising steps a chunk evaluates, noisiest first."""
        if ddim_steps is None:
            return list(range(self.steps - 1, -1, -1))
        return ddim_subset(self.steps, ddim_steps)

    def sample(self, eps_fn: EpsFn, batch: int, size: int, rng: np.random.Generator,
               ddim_steps: int | None = None) -> np.ndarray:
        """A clean sample (B, size) in [-1, 1]; ``ddim_steps=None`` runs DDPM over all K."""
        x = rng.standard_normal((batch, size))
        ks = self.schedule(ddim_steps)
        for i, k in enumerate(ks):
            eps = eps_fn(x, np.full(batch, k, np.int64))
            if ddim_steps is None:
                z = rng.standard_normal((batch, size)) if k > 0 else None
                x = self.ddpm_step(x, eps, k, z)
            else:
                x = self.ddim_step(x, eps, k, ks[i + 1] if i + 1 < len(ks) else -1)
        return x
