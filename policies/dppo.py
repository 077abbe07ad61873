"""DPPO over the denoising chain (Ren et al. 2024), as L-SDPPO fine-tunes the spiking
denoiser: the pieces that do not depend on the environment.

**Inner MDP.** A chunk decision is the chain x_{K-1} -> ... -> x_{-1} (``x_{-1}`` is the
executed chunk, normalised). Each DDPM reverse step k is a Gaussian action

    x_{k-1} ~ N(mu_theta(x_k, k, s), sigma_k^2 I),   sigma_k = max(sqrt(var_k), sigma_min)
    mu_theta = c0_k x0_hat + ck_k x_k,  x0_hat = clamp((x_k - sqrt(1 - ab_k) eps) / sqrt(ab_k))
    (x0_hat = clamp(out) for a denoiser that predicts x_0)

with ``c0_k, ck_k, var_k`` the posterior constants of ``policies/diffusion.py`` (var_0 = 0,
so step 0 has std ``sigma_min``: every fine-tuned step explores, as in DPPO). The first
K - K' steps run a frozen copy of the denoiser (outside the likelihood); the last K'
run the trainable one. Log-likelihoods use the floor ``sigma_lp_min`` instead and, as
DPPO's code does, average over the A elements of the chunk the per-element log-densities,
each clamped to [-5, 2] (a ratio is then a per-element ratio, which the small clip
coefficients below are meant for):

    l_j,a = clamp(log N(x_{k_j - 1, a}; mu_theta(x_{k_j}, k_j, s)_a, sigma'_kj^2), -5, 2)
    log pi_j = (1/A) sum_a l_j,a,      sigma'_k = max(sqrt(var_k), sigma_lp_min)

**PPO per denoising step** j = 0 (noisiest fine-tuned) .. K' - 1 (last), advantage A of
the chunk step:

    r_j = exp(log pi_j - log pi_j,old)
    L_pg = -mean_j,b( w_j min(r_j A, clip(r_j, 1 - eps_j, 1 + eps_j) A) )
    eps_j = eps_0 + (eps_1 - eps_0) (exp(rho u_j) - 1) / (exp(rho) - 1),  u_j = j / (K' - 1)
    w_j = gamma_d^(K' - 1 - j)       (denoising discount: the noisiest step weighs least)

**Advantages** by GAE over chunk steps t (rewards summed over the chunk's actions):

    delta_t = r_t + gamma V(s_{t+1}) (1 - d_t) - V(s_t)
    A_t = delta_t + gamma lambda (1 - d_t) A_{t+1}

**Energy** (beyond the paper): ``energy_coef`` adds lambda_E times the actor's mean firing
rate over the recomputed steps to the loss (spikes per neuron per micro-step: synaptic
events per chunk are proportional to it), so fine-tuning can also lower energy.

Defaults are L-SDPPO's: K' = 10 of 20, sigma floors 0.1, eps from 0.001 to 0.01 with
rho = 3, gamma 0.999, lambda 0.95, gamma_d 0.99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from policies.diffusion import Schedule
from policies.dist import Comm

LOG_2PI = math.log(2 * math.pi)
LOGP_MIN, LOGP_MAX = -5.0, 2.0  # per-element log-density clamp (DPPO's code)


@dataclass(frozen=True)
class DppoConfig:
    ft_steps: int = 10  # K': denoising steps fine-tuned (the last ones)
    sigma_min: float = 0.1  # sampling std floor
    sigma_lp_min: float = 0.1  # log-probability std floor
    clip_base: float = 0.001  # eps_0, noisiest fine-tuned step
    clip_top: float = 0.01  # eps_1, last step
    clip_rate: float = 3.0  # rho
    gamma: float = 0.999
    lam: float = 0.95
    gamma_denoise: float = 0.99
    vf_coef: float = 0.5
    target_kl: float | None = 1.0  # early stop of the epochs of an iteration
    energy_coef: float = 0.0  # weight of the spiking actor's mean firing rate in the loss


@dataclass(frozen=True)
class StepConstants:
    """Per step k (float64, length K): x0_hat coefficients and posterior mean/std."""

    sqrt_ab: torch.Tensor
    sqrt_1mab: torch.Tensor
    c0: torch.Tensor
    ck: torch.Tensor
    std: torch.Tensor  # sqrt(var_k); 0 at k = 0
    prediction: str = "epsilon"  # what the denoiser outputs (policies.diffusion)

    @classmethod
    def of(cls, schedule: Schedule) -> StepConstants:
        ab, beta = schedule.alpha_bars, schedule.betas
        ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
        return cls(sqrt_ab=ab.sqrt(), sqrt_1mab=(1 - ab).sqrt(),
                   c0=ab_prev.sqrt() * beta / (1 - ab),
                   ck=(1 - beta).sqrt() * (1 - ab_prev) / (1 - ab),
                   std=(beta * (1 - ab_prev) / (1 - ab)).clamp(min=0).sqrt(),
                   prediction=schedule.prediction)


def clip_coefs(ft_steps: int, base: float, top: float, rate: float) -> torch.Tensor:
    """eps_j for j = 0 .. K'-1 (see the module docstring)."""
    if ft_steps == 1:
        return torch.tensor([top], dtype=torch.float64)
    u = torch.arange(ft_steps, dtype=torch.float64) / (ft_steps - 1)
    return base + (top - base) * (torch.exp(rate * u) - 1) / (math.exp(rate) - 1)


def denoise_weights(ft_steps: int, gamma_denoise: float) -> torch.Tensor:
    """w_j = gamma_d^(K' - 1 - j) for j = 0 .. K'-1."""
    return gamma_denoise ** torch.arange(ft_steps - 1, -1, -1, dtype=torch.float64)


def step_mean(denoiser: nn.Module, consts: StepConstants, x: torch.Tensor, k: int,
              s: torch.Tensor) -> torch.Tensor:
    """mu_theta(x_k, k, s) of the DDPM reverse step (x0_hat clamped to [-1, 1])."""
    out = denoiser(x, torch.full((x.shape[0],), k, dtype=torch.long), s)
    if consts.prediction == "sample":
        x0 = out.clamp(-1, 1)
    elif consts.prediction == "v":
        x0 = (consts.sqrt_ab[k].item() * x - consts.sqrt_1mab[k].item() * out).clamp(-1, 1)
    else:
        x0 = ((x - consts.sqrt_1mab[k].item() * out) / consts.sqrt_ab[k].item()).clamp(-1, 1)
    return consts.c0[k].item() * x0 + consts.ck[k].item() * x


def _std(consts: StepConstants, k: int, floor: float) -> float:
    return max(float(consts.std[k]), floor)


def _log_density(x_next: torch.Tensor, mu: torch.Tensor, std: float) -> torch.Tensor:
    """Per-element Gaussian log-density, clamped, averaged over the chunk: (B,)."""
    z = (x_next - mu) / std
    return (-0.5 * z.pow(2) - math.log(std) - 0.5 * LOG_2PI).clamp(LOGP_MIN, LOGP_MAX).mean(-1)


@torch.no_grad()
def sample_chain(frozen: nn.Module, actor: nn.Module, consts: StepConstants, s: torch.Tensor,
                 size: int, cfg: DppoConfig, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine-tuned part of a chain for states ``s`` (B, obs_dim): (B, K' + 1, size),
    entry 0 the input of the first fine-tuned step and entry K' the sampled x_{-1}, and
    its log pi_j (B, K') from the same forward passes (what ``chain_log_prob`` gives for
    it). The executed chunk is ``chain[:, -1].clamp(-1, 1)``."""
    steps = len(consts.std)
    x = torch.randn((s.shape[0], size), generator=generator, dtype=s.dtype)
    chain, logp = [], []
    for k in range(steps - 1, -1, -1):
        tuned = k < cfg.ft_steps
        if k == cfg.ft_steps - 1:
            chain.append(x)
        mu = step_mean(actor if tuned else frozen, consts, x, k, s)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = mu + _std(consts, k, cfg.sigma_min) * noise
        if tuned:
            chain.append(x)
            logp.append(_log_density(x, mu, _std(consts, k, cfg.sigma_lp_min)))
    return torch.stack(chain, 1), torch.stack(logp, 1)


def chain_log_prob(actor: nn.Module, consts: StepConstants, s: torch.Tensor,
                   chain: torch.Tensor, cfg: DppoConfig,
                   rates: list[torch.Tensor] | None = None) -> torch.Tensor:
    """log pi_j of each fine-tuned step, (B, K'), j = 0 noisiest (per-element mean of the
    clamped log-densities, see the module docstring); differentiable. ``rates``: if
    given, the spiking actor's mean firing rate of each step is appended."""
    out = []
    for j in range(cfg.ft_steps):
        k = cfg.ft_steps - 1 - j
        mu = step_mean(actor, consts, chain[:, j], k, s)
        if rates is not None and hasattr(actor, "last_rate"):
            rates.append(actor.last_rate)
        out.append(_log_density(chain[:, j + 1], mu, _std(consts, k, cfg.sigma_lp_min)))
    return torch.stack(out, 1)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        last_value: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) for (T, N) rewards, values and done flags (1 where the
    episode ended at that step, so nothing is bootstrapped across it)."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in range(rewards.shape[0] - 1, -1, -1):
        nxt = last_value if t + 1 == rewards.shape[0] else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv, adv + values


class RewardScaler:
    """Running reward scaling: rewards divided by the running standard deviation of the
    discounted return R_t = gamma R_{t-1} (1 - d_{t-1}) + r_t, over every env of every
    rank (running count, sum and sum of squares, summed across ranks by ``comm``)."""

    def __init__(self, envs: int, gamma: float, comm: Comm | None = None) -> None:
        self.gamma, self.comm = gamma, comm or Comm()
        self.ret = torch.zeros(envs, dtype=torch.float64)
        self.moments = torch.zeros(3, dtype=torch.float64)  # count, sum, sum of squares

    def __call__(self, reward: torch.Tensor, done: torch.Tensor,
                 live: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled ``reward``; ``live`` (bool) marks the envs whose transition counts (the
        others' returns and the statistics are left alone)."""
        live = torch.ones(len(self.ret), dtype=torch.bool) if live is None else live
        new = torch.where(live, self.gamma * self.ret + reward.double(), self.ret)
        seen = new[live]
        self.moments += self.comm.sum(torch.stack([torch.tensor(float(len(seen))),
                                                   seen.sum(), seen.pow(2).sum()]))
        self.ret = torch.where(live & done.bool(), torch.zeros_like(new), new)
        n, s1, s2 = self.moments.tolist()
        var = s2 / n - (s1 / n) ** 2 if n > 1 else 1.0
        return reward / max(math.sqrt(max(var, 0.0)), 1e-8)

    def state_dict(self) -> dict[str, object]:
        return {"ret": self.ret.clone(), "moments": self.moments.clone()}

    def load_state_dict(self, d: dict[str, object]) -> None:
        """Restore the statistics; returns in flight are restored only if this scaler has
        as many envs (between iterations they are all 0, whatever the rank count)."""
        self.moments = d["moments"].clone()
        if len(d["ret"]) == len(self.ret):
            self.ret = d["ret"].clone()


def ppo_policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                    cfg: DppoConfig) -> dict[str, torch.Tensor]:
    """The clipped surrogate over the K' steps (``logp`` (B, K'), ``adv`` (B,)), with the
    approximate KL ((r - 1) - log r, averaged) and the fraction of clipped ratios."""
    eps = clip_coefs(cfg.ft_steps, cfg.clip_base, cfg.clip_top, cfg.clip_rate).to(logp.dtype)
    w = denoise_weights(cfg.ft_steps, cfg.gamma_denoise).to(logp.dtype)
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    a = adv.unsqueeze(1)
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps) * a
    loss = -(w * torch.minimum(unclipped, clipped)).mean()
    with torch.no_grad():
        kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1).abs() > eps).double().mean()
    return {"pg_loss": loss, "approx_kl": kl, "clipfrac": clipfrac}


class Critic(nn.Module):
    """V(s): an ANN on the normalised state (residual MLP, as L-SDPPO's)."""

    def __init__(self, obs_dim: int, hidden: int = 256, blocks: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(obs_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.Mish(),
                                                  nn.Linear(hidden, hidden))
                                    for _ in range(blocks))
        self.out = nn.Linear(hidden, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(s))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).squeeze(-1)


def normalised_advantages(adv: torch.Tensor, comm: Comm | None = None) -> torch.Tensor:
    """``(A - mean) / (std + 1e-8)`` over the whole batch of every rank (unbiased std);
    unchanged for a batch of one."""
    comm = comm or Comm()
    total = comm.sum(torch.tensor([float(len(adv)), float(adv.sum())]))
    mean = float(total[1] / total[0])
    sq = float(comm.sum((adv.double() - mean).pow(2).sum()))
    if total[0] <= 1:
        return adv
    return (adv - mean) / (math.sqrt(sq / (float(total[0]) - 1)) + 1e-8)


def update(actor: nn.Module, critic: nn.Module, actor_opt: torch.optim.Optimizer | None,
           critic_opt: torch.optim.Optimizer, consts: StepConstants,
           batch: dict[str, torch.Tensor], cfg: DppoConfig, epochs: int, minibatch: int,
           generator: torch.Generator | None = None, comm: Comm | None = None
           ) -> dict[str, float]:
    """PPO epochs over ``batch`` (``s`` normalised states (B, obs_dim), ``chain`` (B, K'+1,
    A), ``logp`` old log-probs (B, K'), ``adv`` (B,), ``ret`` (B,)); ``actor_opt=None``
    updates the critic only (warm-up). Advantages are normalised over the whole batch (all
    ranks). Stops early once the approximate KL of a minibatch exceeds ``cfg.target_kl``.

    With ``comm`` over several ranks, each holds its part of the batch and minibatches of
    ``minibatch / world`` rows; gradients are averaged over ranks after every backward, so
    equal parts give the single-process update of the whole batch."""
    comm = comm or Comm()
    n = batch["s"].shape[0]
    adv = normalised_advantages(batch["adv"], comm)
    local = max(1, minibatch // comm.world)
    per_epoch = comm.max(math.ceil(n / local))  # the same number of steps on every rank
    params = [*actor.parameters(), *critic.parameters()]
    stats = {"pg_loss": 0.0, "vf_loss": 0.0, "approx_kl": 0.0, "clipfrac": 0.0, "updates": 0}
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for m in range(per_epoch):
            idx = order[torch.arange(m * local, (m + 1) * local) % n]
            s = batch["s"][idx]
            vf = 0.5 * (critic(s) - batch["ret"][idx]).pow(2).mean()
            loss = cfg.vf_coef * vf
            if actor_opt is not None:
                rates: list[torch.Tensor] = []
                logp = chain_log_prob(actor, consts, s, batch["chain"][idx], cfg, rates)
                pg = ppo_policy_loss(logp, batch["logp"][idx], adv[idx], cfg)
                loss = loss + pg["pg_loss"]
                if cfg.energy_coef and rates:
                    loss = loss + cfg.energy_coef * torch.stack(rates).mean()
                actor_opt.zero_grad()
            critic_opt.zero_grad()
            loss.backward()
            comm.mean_grads(params)
            critic_opt.step()
            stats["vf_loss"] += float(vf.detach())
            stats["updates"] += 1
            if actor_opt is None:
                continue
            actor_opt.step()
            if hasattr(actor, "project_thresholds"):
                actor.project_thresholds()
            kl = float(comm.sum(pg["approx_kl"].detach())) / comm.world
            stats["approx_kl"] += kl
            for key in ("pg_loss", "clipfrac"):
                stats[key] += float(pg[key].detach())
            if cfg.target_kl is not None and kl > cfg.target_kl:
                return _mean(stats, early_stop=True)
    return _mean(stats, early_stop=False)


def _mean(stats: dict[str, float], early_stop: bool) -> dict[str, float]:
    n = max(stats.pop("updates"), 1)
    return {**{k: v / n for k, v in stats.items()}, "early_stop": float(early_stop)}
