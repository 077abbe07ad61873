"""State-dependent latency injection (SDLI), *reconstructed*.

The L-SDPPO paper's full text is not public; this follows a design reconstructed
from its configuration keys (tau in [1, T-1], sigma0 = 0.9, beta_max = 0.2
ramped over training, ``invert``). It is our reconstruction, not a confirmed copy.

For observation ``s`` (normalised to [-1, 1]) and each channel ``c`` of the state current
entering the first spiking layer, a learned affine map gives a latency in micro-steps

    tau_c(s) = 1 + (T - 2) * sigmoid(W_c . s + b_c)          in [1, T - 1]

and at micro-step ``t = 0 .. T-1`` the state current is gated

    m_t = sigmoid((t - tau_c(s)) / sigma)      (invert: sigmoid((tau_c(s) - t) / sigma))
    c_t = c * ((1 - beta) + beta * m_t)

so with ``invert = False`` a channel delivers most of its current after its latency (late
micro-steps see more of the state); ``invert = True`` front-loads it. ``beta = 0`` gives
gate 1 everywhere: the plain SDP. ``beta`` ramps linearly from 0 to ``beta_max`` over
``ramp_iters`` training iterations; evaluation and deployment use ``beta_max``.
"""

from __future__ import annotations

import torch
from torch import nn


class SdliGate(nn.Module):
    """Per-channel latency map and micro-step gate; ``beta`` is a buffer set by the trainer."""

    def __init__(self, obs_dim: int, channels: int, micro_steps: int, sigma: float = 0.9,
                 beta_max: float = 0.2, invert: bool = False) -> None:
        super().__init__()
        if micro_steps < 2:
            raise ValueError("SDLI needs at least 2 micro-steps (tau lies in [1, T-1])")
        self.latency = nn.Linear(obs_dim, channels)
        self.micro_steps = micro_steps
        self.sigma = sigma
        self.beta_max = beta_max
        self.invert = invert
        self.register_buffer("beta", torch.tensor(float(beta_max)))

    def tau(self, obs: torch.Tensor) -> torch.Tensor:
        """Latency per channel, micro-steps, shape (B, C)."""
        return 1.0 + (self.micro_steps - 2) * torch.sigmoid(self.latency(obs))

    def gates(self, obs: torch.Tensor) -> torch.Tensor:
        """Gate ``(1 - beta) + beta * m_t`` for every micro-step, shape (T, B, C)."""
        tau = self.tau(obs)
        t = torch.arange(self.micro_steps, dtype=tau.dtype, device=tau.device).view(-1, 1, 1)
        z = (tau - t) if self.invert else (t - tau)
        m = torch.sigmoid(z / self.sigma)
        return (1.0 - self.beta) + self.beta * m

    def set_ramp(self, iteration: int, ramp_iters: int) -> None:
        """Linear strength ramp: beta = beta_max * min(1, iteration / ramp_iters)."""
        frac = 1.0 if ramp_iters <= 0 else min(1.0, iteration / ramp_iters)
        self.beta.fill_(self.beta_max * frac)
