"""``DiffusionPolicy``: normalisers + denoiser + schedule; training loss and acting.

Observation horizon 1, action chunk ``cfg.chunk`` (all executed). Actions are min-max
normalised to [-1, 1] per dimension and a chunk is denoised as one vector of
``chunk * act_dim`` values. The network works in ``cfg.frame`` (world or gripper frame,
``hardware/sim/action_frame.py``): ``loss`` takes chunks already in it (``BcData.in_frame``),
``act`` returns them in the world frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.config import PolicyConfig
from policies.denoiser import SpikingDenoiser, build_denoiser
from policies.diffusion import Schedule, sample
from policies.normalize import MinMax


class DiffusionPolicy(nn.Module):
    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_norm = MinMax(cfg.obs_dim)
        self.act_norm = MinMax(cfg.act_dim)
        self.denoiser = build_denoiser(cfg)
        self.schedule = Schedule.cosine(cfg.diffusion_steps, cfg.cosine_s, cfg.prediction)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising MSE (against eps, x_0 or v: ``Schedule.target``) for raw
        ``obs`` (B, obs_dim) and action chunks ``actions`` (B, chunk, act_dim)."""
        b = obs.shape[0]
        x0 = self.act_norm(actions).reshape(b, -1)
        s = self.obs_norm(obs)
        k = torch.randint(0, self.schedule.steps, (b,), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        xk = self.schedule.add_noise(x0, eps, k)
        return nn.functional.mse_loss(self.denoiser(xk, k, s), self.schedule.target(x0, eps, k))

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator | None = None,
            ddim_steps: int | None = None) -> np.ndarray:
        """Action chunks for a batch of raw observations (B, obs_dim) -> (B, chunk, act_dim)."""
        s = self.obs_norm(torch.as_tensor(np.asarray(obs), dtype=torch.float32))
        if s.dim() == 1:
            s = s.unsqueeze(0)
        b = s.shape[0]

        def denoise(x: torch.Tensor, k: int) -> torch.Tensor:
            return self.denoiser(x, torch.full((b,), k, dtype=torch.long), s)

        x = sample(self.schedule, denoise, (b, self.cfg.action_size), generator, ddim_steps)
        return self.chunk_actions(obs, x)

    def chunk_actions(self, obs: np.ndarray, x: torch.Tensor) -> np.ndarray:
        """Raw world-frame actions (B, chunk, act_dim) of normalised chunks ``x``
        (B, chunk * act_dim) planned on the raw observations ``obs`` (B, obs_dim)."""
        chunk = self.act_norm.inverse(x.reshape(-1, self.cfg.chunk, self.cfg.act_dim))
        return self.cfg.frame.to_world(np.atleast_2d(obs), chunk.numpy())

    @property
    def spiking(self) -> SpikingDenoiser | None:
        d = self.denoiser
        return d if isinstance(d, SpikingDenoiser) else None
