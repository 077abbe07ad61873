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

A network that predicts the clean chunk itself (``prediction = "sample"``, the x0
parameterisation) replaces the first line by ``x0_hat = clip(out, -1, 1)``, one that
predicts the velocity ``v = sqrt(ab_k) eps - sqrt(1 - ab_k) x_0`` (``prediction = "v"``) by
``x0_hat = clip(sqrt(ab_k) x_k - sqrt(1 - ab_k) out, -1, 1)``; the steps are otherwise the
same.

All randomness comes from a ``numpy.random.Generator`` drawn in a fixed order (x_{K-1},
then one z per evaluated step, drawn even where its coefficient is 0), so a seed fixes
the chunk given the denoiser.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_RANGE = 1e-6  # as the trainer's normaliser: narrower action ranges are constants

EpsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x_k (B, A), k (B,)) -> output
PREDICTIONS = ("epsilon", "sample", "v")  # what the denoiser outputs: noise, x0 or velocity


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
    """Both samplers as one table of per-step coefficients (``coefficients``):

        x0_hat = clip((x - s1 eps) / s0, -1, 1),   s0 = sqrt(ab_k), s1 = sqrt(1 - ab_k)
        x_next = a x0_hat + b x + c z

    DDPM: (a, b, c) = (c0, ck, sqrt(var_k)) with c = 0 at k = 0; DDIM:
    a = sqrt(ab_prev) - sqrt(1 - ab_prev) sqrt(ab_k) / sqrt(1 - ab_k),
    b = sqrt(1 - ab_prev) / sqrt(1 - ab_k), c = 0; the last DDIM step returns x0_hat
    (a, b, c) = (1, 0, 0). Backends that run a whole chunk in one call take the same table.
    """

    def __init__(self, betas: np.ndarray, alpha_bars: np.ndarray,
                 prediction: str = "epsilon") -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"got {prediction!r}")
        self.betas = np.asarray(betas, np.float64)
        self.alpha_bars = np.asarray(alpha_bars, np.float64)
        self.prediction = prediction

    @property
    def steps(self) -> int:
        return len(self.betas)

    def schedule(self, ddim_steps: int | None) -> list[int]:
        """The denoising steps a chunk evaluates, noisiest first."""
        if ddim_steps is None:
            return list(range(self.steps - 1, -1, -1))
        return ddim_subset(self.steps, ddim_steps)

    def coefficients(self, ddim_steps: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Step indices ``ks`` (n,) and rows ``(s0, s1, a, b, c)`` (n, 5) of a chunk."""
        ks = self.schedule(ddim_steps)
        rows = []
        for i, k in enumerate(ks):
            ab = self.alpha_bars[k]
            s0, s1 = np.sqrt(ab), np.sqrt(1 - ab)
            if ddim_steps is None:
                beta = self.betas[k]
                ab_prev = self.alpha_bars[k - 1] if k > 0 else 1.0
                a = np.sqrt(ab_prev) * beta / (1 - ab)
                b = np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
                c = np.sqrt(beta * (1 - ab_prev) / (1 - ab)) if k > 0 else 0.0
            elif i + 1 == len(ks):
                a, b, c = 1.0, 0.0, 0.0
            else:
                ab_prev = self.alpha_bars[ks[i + 1]]
                a = np.sqrt(ab_prev) - np.sqrt(1 - ab_prev) * s0 / s1
                b, c = np.sqrt(1 - ab_prev) / s1, 0.0
            rows.append((s0, s1, a, b, c))
        return np.asarray(ks, np.int64), np.asarray(rows, np.float64)

    def step(self, x: np.ndarray, out: np.ndarray, row: np.ndarray,
             z: np.ndarray) -> np.ndarray:
        """One reverse step with a coefficient row (see the class docstring); ``out`` is
        the denoiser's output (eps, or x0 for ``prediction = "sample"``)."""
        if self.prediction == "sample":
            x0 = np.clip(out, -1.0, 1.0)
        elif self.prediction == "v":
            x0 = np.clip(row[0] * x - row[1] * out, -1.0, 1.0)
        else:
            x0 = np.clip((x - row[1] * out) / row[0], -1.0, 1.0)
        return row[2] * x0 + row[3] * x + row[4] * z

    @staticmethod
    def draw(rng: np.random.Generator, batch: int, size: int,
             n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's randomness, in a fixed order: x (B, size), then z (n, B, size)."""
        return rng.standard_normal((batch, size)), rng.standard_normal((n_steps, batch, size))

    def sample(self, eps_fn: EpsFn, batch: int, size: int, rng: np.random.Generator,
               ddim_steps: int | None = None) -> np.ndarray:
        """A clean sample (B, size) in [-1, 1]; ``ddim_steps=None`` runs DDPM over all K."""
        ks, coef = self.coefficients(ddim_steps)
        x, z = self.draw(rng, batch, size, len(ks))
        for i, k in enumerate(ks):
            x = self.step(x, eps_fn(x, np.full(batch, k, np.int64)), coef[i], z[i])
        return x
