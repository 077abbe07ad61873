"""Noise-prediction networks: the spiking denoiser (snnTorch LIF) and its ReLU twin.

Both share one Loihi-deployable layout (dense layers, additive conditioning):

    c   = ObsEncoder(s)                         state current, once per chunk   (B, H0)
    e_k = StepEmbedding(k)                      a table over k (compiler folds it) (H0,)
    a   = W_in x_k + b_in                       analog input current            (B, H0)

Spiking denoiser, micro-steps t = 0 .. T-1, LIF populations l = 1 .. L (snnTorch
``Leaky``, reset to zero in the same step as Lava's LIF):

    I_1(t) = a + e_k + c * g_t(s)              (g_t = SDLI gate, 1 without SDLI)
    v_l(t) = beta v_l(t-1) + I_l(t);  s_l(t) = [v_l(t) > theta_l];  v_l(t) <- 0 where s_l(t)
    I_{l+1}(t) = W_l s_l(t) + b_l
    eps_hat = (1/T) sum_t (W_out s_L(t)) + b_out    non-spiking readout, averaged
            [+ W_s c]                               with ``state_readout``: graded, once per chunk

``theta_l`` are learnable per-channel thresholds (LCMT, SDP paper). The ANN twin is
``h_1 = relu(a + e_k + c)``, ``h_{l+1} = relu(W_l h_l + b_l)``,
``eps_hat = W_out h_L + b_out [+ W_s c]``.

The state readout ``W_s`` (``cfg.state_readout``, zero at initialisation) exists because
a spiking core's output is a staircase of its input: a small change of the state moves no
spike, so an x_0 predictor's corrective response to the state is coarse. ``W_s c``
depends on the state alone, is computed once per chunk on the host beside the encoder,
and gives the prediction a part that varies smoothly with the state.
"""

from __future__ import annotations

import math

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from policies.config import PolicyConfig
from policies.sdli import SdliGate

THRESHOLD_FLOOR = 0.05  # thresholds are projected above this after each optimiser step


class StepEmbedding(nn.Module):
    """Sinusoidal embedding of the denoising step, then a small MLP (a function of k only,
    so the compiler replaces it by a K-row table of biases)."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Mish(), nn.Linear(2 * dim, out))

    def sinusoid(self, k: torch.Tensor) -> torch.Tensor:
        """Sines and cosines of k times geometric frequencies, in the MLP's dtype."""
        half = self.dim // 2
        dtype = self.mlp[0].weight.dtype
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype) / half)
        angles = k.to(dtype).view(-1, 1) * freqs.view(1, -1)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(k))


class Denoiser(nn.Module):
    """Shared layout; ``forward(x, k, obs)`` returns eps_hat of shape (B, chunk * act_dim)."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h0 = cfg.hidden[0]
        self.obs_encoder = nn.Sequential(nn.Linear(cfg.obs_dim, cfg.obs_hidden), nn.ReLU(),
                                         nn.Linear(cfg.obs_hidden, h0))
        self.step_embedding = StepEmbedding(cfg.emb_dim, h0)
        self.input = nn.Linear(cfg.action_size, h0)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(cfg.hidden, cfg.hidden[1:],
                                                                   strict=False))
        self.readout = nn.Linear(cfg.hidden[-1], cfg.action_size)
        self.state_readout = (nn.Linear(h0, cfg.action_size, bias=False)
                              if cfg.state_readout else None)
        if self.state_readout is not None:
            nn.init.zeros_(self.state_readout.weight)

    def with_state_readout(self, out: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``out + W_s c`` where the layout has a state readout, else ``out``."""
        return out if self.state_readout is None else out + self.state_readout(c)

    def base_current(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """a + e_k: the part of the first layer's input that does not depend on the state."""
        return self.input(x) + self.step_embedding(k)


class AnnDenoiser(Denoiser):
    """The ReLU twin."""

    def forward(self, x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        c = self.obs_encoder(obs)
        h = torch.relu(self.base_current(x, k) + c)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.with_state_readout(self.readout(h), c)


class SpikingDenoiser(Denoiser):
    """LIF populations over T micro-steps; optional SDLI gate on the state current.

    ``spike_counts`` (one tensor per population: spikes summed over batch and micro-steps)
    and ``spike_samples`` (batch x micro-steps seen) accumulate while ``record`` is True;
    ``last_rate`` is the differentiable mean firing rate of the last forward pass (spikes
    per neuron per micro-step over all populations), for activity regularisation.
    """

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__(cfg)
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=cfg.lif_beta, threshold=torch.ones(h), learn_threshold=True,
                      spike_grad=surrogate.atan(), reset_mechanism=cfg.reset, reset_delay=False)
            for h in cfg.hidden)
        self.sdli = (SdliGate(cfg.obs_dim, cfg.hidden[0], cfg.micro_steps, cfg.sdli_sigma,
                              cfg.sdli_beta_max, cfg.sdli_invert) if cfg.sdli else None)
        self.record = False
        self.reset_stats()

    def reset_stats(self) -> None:
        self.spike_counts = [torch.zeros(h) for h in self.cfg.hidden]
        self.spike_samples = 0

    def firing_rates(self) -> list[float]:
        """Mean spikes per neuron per micro-step, per population, since ``reset_stats``."""
        n = max(self.spike_samples, 1)
        return [float(c.sum()) / (n * c.numel()) for c in self.spike_counts]

    def state_currents(self, obs: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """c * g_t for every micro-step, shape (T, B, H0), from ``c = obs_encoder(obs)``."""
        if self.sdli is None:
            return c.unsqueeze(0).expand(self.cfg.micro_steps, *c.shape)
        return c.unsqueeze(0) * self.sdli.gates(obs)

    def forward(self, x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        base = self.base_current(x, k)
        c = self.obs_encoder(obs)
        state = self.state_currents(obs, c)
        mems = [torch.zeros_like(base[:, :1]).expand(-1, h) for h in self.cfg.hidden]
        acc = torch.zeros(x.shape[0], self.cfg.action_size, dtype=x.dtype)
        spikes = torch.zeros((), dtype=x.dtype)
        for t in range(self.cfg.micro_steps):
            cur = base + state[t]
            for i, lif in enumerate(self.lifs):
                spk, mems[i] = lif(cur, mems[i])
                spk = spk.to(cur.dtype)  # snnTorch's spikes are float32 whatever the input
                spikes = spikes + spk.sum()
                if self.record:
                    self.spike_counts[i] += spk.detach().sum(0)
                cur = self.hidden[i](spk) if i < len(self.hidden) else spk
            acc = acc + nn.functional.linear(cur, self.readout.weight)
        if self.record:
            self.spike_samples += x.shape[0] * self.cfg.micro_steps
        self.last_rate = spikes / (x.shape[0] * self.cfg.micro_steps * sum(self.cfg.hidden))
        return self.with_state_readout(acc / self.cfg.micro_steps + self.readout.bias, c)

    @torch.no_grad()
    def project_thresholds(self) -> None:
        """Keep learnable thresholds positive (a spiking threshold <= 0 fires always)."""
        for lif in self.lifs:
            lif.threshold.clamp_(min=THRESHOLD_FLOOR)


def build_denoiser(cfg: PolicyConfig) -> Denoiser:
    return SpikingDenoiser(cfg) if cfg.spiking else AnnDenoiser(cfg)
