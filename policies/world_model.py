"""The teacher world model: an ensemble of probabilistic MLPs learned from transitions.

Per control step the model maps the observation ``s_t`` and the action ``a_t`` to the next
observation, the reward ``r_t`` and whether the step ended the episode in success
``d_t`` (the cabin tasks end on success). Each of ``M`` members is an MLP (SiLU) on
``z = [N_s(s_t), N_a(a_t)]`` with the output ``[mu, log_var, r_hat, d_logit]``, where
``mu`` and ``log_var`` are the mean and log-variance of the normalised change

    delta_n = N_d(s_{t+1} - s_t) ~ Normal(mu, exp(log_var))

(``N_s``, ``N_a``: ``policies.normalize.MinMax`` with robust ranges for observations and
the extremes for actions; ``N_d`` standardises every change by its mean and standard
deviation, ``MinMax`` with ``lo, hi = mean -+ std``; a change the data never shows maps
to 0). ``log_var`` is softly bounded to
``[LOG_VAR_MIN, LOG_VAR_MAX]`` (PETS, Chua et al. 2018). The loss of a member on a batch
is

    L = mean_dims(0.5 * (log_var + (delta_n - mu)^2 / exp(log_var))) * m
        + (r_hat - r)^2 + BCE(d_logit, d)

with ``m`` = 0 on an episode's last step (its next observation is not recorded) and 1
elsewhere; every member draws its own batch (bootstrap). A prediction is the members'
mean; its epistemic uncertainty ``u`` is the members' standard deviation of ``mu``,
averaged over the dimensions (normalised units). Rolling out a chunk applies the model
step after step to its own predictions (open loop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hardware.errors import SpikeflightError
from hardware.sim.dataset import read_episodes
from policies.data import DemoDataError, check_values
from policies.normalize import MinMax

LOG_VAR_MIN, LOG_VAR_MAX = -10.0, 1.0


class TransitionError(SpikeflightError):
    """Transitions unusable for a world model (sizes, NaN, nothing to learn from)."""


class DictConfig:
    """``to_dict`` / ``from_dict`` for a config dataclass (JSON in checkpoints)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        return cls(**d)


@dataclass
class WorldModelConfig(DictConfig):
    obs_dim: int
    act_dim: int
    members: int = 5
    hidden: list[int] = field(default_factory=lambda: [512, 512, 512])


@dataclass
class Transitions:
    """Per-step transitions, float32 tensors: ``obs`` (N, obs_dim), ``act`` (N, act_dim),
    ``next_obs`` (N, obs_dim; a copy of ``obs`` where ``valid`` is 0), ``reward`` (N,),
    ``done`` (N,: 1 where the step ended the episode in success), ``valid`` (N,)."""

    obs: torch.Tensor
    act: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    valid: torch.Tensor
    episodes: int

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def episode_arrays(ep: Any) -> tuple[np.ndarray, np.ndarray]:
    """(observations (L, obs_dim), the actions the robot executed (L, act_dim))."""
    obs = np.concatenate([v.reshape(ep.length, -1) for v in ep.obs.values()], axis=1)
    act = ep.executed_actions if ep.executed_actions is not None else ep.actions
    return obs, np.asarray(act)


def checked_arrays(path: str, ep: Any, obs_dim: int, act_dim: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``episode_arrays(ep)`` after checking its sizes and that every value is finite."""
    obs, act = episode_arrays(ep)
    if obs.shape[1] != obs_dim or act.shape[1] != act_dim:
        raise TransitionError(f"{path}: steps have {obs.shape[1]} observation and "
                              f"{act.shape[1]} action values, the task expects {obs_dim} "
                              f"and {act_dim}")
    try:
        for name, arr in (("obs", obs), ("actions", act)):
            check_values(path, name, arr, f"the episode of seed {ep.seed}")
    except DemoDataError as exc:
        raise TransitionError(str(exc)) from None
    return obs, act


def load_transitions(paths: list[str], obs_dim: int, act_dim: int,
                     task: str | None = None,
                     obs_keys: list[str] | None = None) -> Transitions:
    """Every step of every episode in ``paths`` (successes and failures alike), their
    observation fields in ``task``'s order (``read_episodes``)."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "next", "r", "d", "v")}
    n_eps = 0
    for path in paths:
        for ep in read_episodes(path, task, obs_keys):
            obs, act = checked_arrays(path, ep, obs_dim, act_dim)
            n = ep.length
            cols["obs"].append(obs)
            cols["act"].append(act)
            cols["next"].append(np.concatenate([obs[1:], obs[-1:]]))
            cols["r"].append(np.asarray(ep.rewards, np.float64))
            cols["d"].append(np.asarray(ep.dones, np.float64))
            cols["v"].append(np.r_[np.ones(n - 1), 0.0])
            n_eps += 1
    if not n_eps:
        raise TransitionError(f"no episodes in {', '.join(paths)}")

    def cat(k: str) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(cols[k]), dtype=torch.float32)

    return Transitions(cat("obs"), cat("act"), cat("next"), cat("r"), cat("d"), cat("v"),
                       n_eps)


class EnsembleLinear(nn.Module):
    """``M`` independent linear layers applied in one batched product: (M, B, i) -> (M, B, o)."""

    def __init__(self, members: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1.0 / np.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleWorldModel(nn.Module):
    """The teacher (module docstring)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, sizes = cfg.members, [cfg.obs_dim + cfg.act_dim, *cfg.hidden]
        self.layers = nn.ModuleList(EnsembleLinear(m, a, b)
                                    for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.head = EnsembleLinear(m, sizes[-1], 2 * cfg.obs_dim + 2)
        self.obs_norm = MinMax(cfg.obs_dim)
        self.act_norm = MinMax(cfg.act_dim)
        self.delta_norm = MinMax(cfg.obs_dim)

    def fit_normalizers(self, data: Transitions) -> None:
        self.obs_norm.load_state_dict(MinMax.fit_robust(data.obs).state_dict())
        self.act_norm.load_state_dict(MinMax.fit(data.act).state_dict())
        delta = (data.next_obs - data.obs)[data.valid > 0].double()
        mean, std = delta.mean(0), delta.std(0)  # lo, hi = mean -+ std: a standardiser
        self.delta_norm.lo.copy_(mean - std)
        self.delta_norm.hi.copy_(mean + std)

    def heads(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per member (M, B, .): ``mu``, ``log_var`` (normalised change), ``r_hat``,
        ``d_logit``; ``obs`` and ``act`` are raw, (B, .) or (M, B, .)."""
        z = torch.cat([self.obs_norm(obs), self.act_norm(act)], dim=-1)
        if z.dim() == 2:
            z = z.expand(self.cfg.members, *z.shape)
        for layer in self.layers:
            z = F.silu(layer(z))
        out = self.head(z)
        d = self.cfg.obs_dim
        mu, raw = out[..., :d], out[..., d:2 * d]
        log_var = LOG_VAR_MAX - F.softplus(LOG_VAR_MAX - raw)
        log_var = LOG_VAR_MIN + F.softplus(log_var - LOG_VAR_MIN)
        return mu, log_var, out[..., 2 * d], out[..., 2 * d + 1]

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean over members of ``L`` (module docstring); ``batch`` tensors are (M, B, .)."""
        obs, act, nxt, r, d, v = batch
        mu, log_var, r_hat, d_logit = self.heads(obs, act)
        target = self.delta_norm(nxt - obs)
        nll = 0.5 * (log_var + (target - mu) ** 2 * torch.exp(-log_var)).mean(-1)
        per = (nll * v).sum(-1) / v.sum(-1).clamp_min(1.0)
        per = per + ((r_hat - r) ** 2).mean(-1)
        per = per + F.binary_cross_entropy_with_logits(d_logit, d, reduction="none").mean(-1)
        return per.mean()

    @torch.no_grad()
    def step(self, obs: torch.Tensor, act: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step from raw ``obs`` (B, obs_dim) and ``act`` (B, act_dim): the next
        observation (members' mean), reward, success probability and uncertainty ``u``."""
        mu, _, r_hat, d_logit = self.heads(obs, act)
        nxt = obs + self.delta_norm.inverse(mu.mean(0))
        u = mu.std(0).mean(-1) if self.cfg.members > 1 else torch.zeros(obs.shape[0])
        return nxt, r_hat.mean(0), torch.sigmoid(d_logit).mean(0), u

    @torch.no_grad()
    def rollout(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Open loop from ``obs`` (B, obs_dim) through ``actions`` (B, H, act_dim):
        ``obs`` (B, H, obs_dim) predicted after each step, ``reward``, ``success`` and
        ``uncertainty`` (B, H)."""
        out: dict[str, list[torch.Tensor]] = {"obs": [], "reward": [], "success": [],
                                              "uncertainty": []}
        s = obs
        for h in range(actions.shape[1]):
            s, r, p, u = self.step(s, actions[:, h])
            for k, v in zip(out, (s, r, p, u), strict=True):
                out[k].append(v)
        return {k: torch.stack(v, dim=1) for k, v in out.items()}
