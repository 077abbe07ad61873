"""The student world model: a compact MLP distilled from the teacher, one evaluation per
action chunk.

From the observation ``s_t`` and the next ``H`` actions (``horizon``, default 4 control
steps: the head of a chunk that runs before the default replanning) the student predicts
the observation ``H`` steps later and the probability that the episode succeeds within
them:

    [mu, d_logit] = MLP([N_s(s_t), N_a(a_t), .., N_a(a_t+H-1)])     (ReLU hidden layers)
    s_hat_t+H    = s_t + N_d^-1(mu)

with the teacher's observation and action normalisers (``N_s``, ``N_a``) and ``N_d`` a
standardiser of the H-step change. Dense, not spiking: at the default size (66 inputs,
128 x 128 hidden, 39 outputs for the hatch task; about 30 k parameters) one prediction
is about 30 k MACs, 0.14 uJ in ``cmos45-horowitz2014``; screening four candidate chunks
adds about 0.55 uJ to a 1.9 uJ chunk of the shipped policy. A spiking student would cut
the hidden layers' cost (accumulates at 0.9 pJ instead of MACs at 4.6 pJ) but needs its
own conformance path on Loihi; the dense one compiles to one small ONNX float graph that
matches its torch model to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from policies.normalize import MinMax
from policies.world_model import DictConfig


@dataclass
class StudentConfig(DictConfig):
    obs_dim: int
    act_dim: int
    horizon: int = 4
    hidden: list[int] = field(default_factory=lambda: [128, 128])

    @property
    def in_dim(self) -> int:
        return self.obs_dim + self.horizon * self.act_dim


class StudentWorldModel(nn.Module):
    """The student (module docstring)."""

    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        sizes = [cfg.in_dim, *cfg.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], cfg.obs_dim + 1))
        self.net = nn.Sequential(*layers)
        self.obs_norm = MinMax(cfg.obs_dim)
        self.act_norm = MinMax(cfg.act_dim)
        self.delta_norm = MinMax(cfg.obs_dim)

    def parameters_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def macs(self) -> int:
        """Multiply-accumulates of one prediction."""
        return sum(m.in_features * m.out_features for m in self.net
                   if isinstance(m, nn.Linear))

    def heads(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``mu`` (B, obs_dim; normalised H-step change) and ``d_logit`` (B,) from raw
        ``obs`` (B, obs_dim) and ``actions`` (B, H, act_dim)."""
        z = torch.cat([self.obs_norm(obs), self.act_norm(actions).flatten(1)], dim=-1)
        out = self.net(z)
        return out[:, :-1], out[:, -1]

    def forward(self, obs: torch.Tensor, actions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted raw observation after H steps, success probability within them)."""
        mu, d_logit = self.heads(obs, actions)
        return obs + self.delta_norm.inverse(mu), torch.sigmoid(d_logit)
