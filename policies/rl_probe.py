"""How well one L-SDPPO iteration determines its gradient: the agreement of policy-gradient
estimates from independent rollouts of the same policy.

Each estimate is the gradient PPO's first step would follow, the clipped surrogate of
``policies/dppo.py`` at ratio 1 over one iteration's whole batch (normalised
advantages, denoising discount, the tuned parameters only):

    g = grad_theta L_pg = -(1 / (B K')) sum_b,j w_j A_b grad log pi_j(b)

Rollout r is iteration r of the run's seed (its own env seeds and noise). For
estimates g_r, g_s the agreement is the cosine g_r . g_s / (|g_r| |g_s|) and the
fraction of parameters whose gradients have the same sign. Two estimates that each hold
the true gradient G plus independent noise of variance sigma^2 / N (N episodes) agree at
about cos = |G|^2 / (|G|^2 + sigma^2 / N): a cosine near 0 says the estimate is noise,
and its growth with N says how many episodes an update needs before its signal equals
its noise (cos = 1/2). So the probe also compares the sums of the two halves of the
rollouts (twice the episodes each).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from policies.dppo import chain_log_prob, normalised_advantages, ppo_policy_loss
from policies.evaluate import check_obs_dim
from policies.rl import RlConfig, Trainer, make_vector_env, tuned_parameters

CHUNK = 512  # decisions per backward pass (bounds the memory of the K' recomputations)


@dataclass
class Agreement:
    episodes: int  # per rollout
    successes: list[int]  # per rollout
    cosines: list[float]  # every pair of single rollouts
    sign_agreement: list[float]  # the same pairs
    halves_cosine: float | None  # sum of the first half against the second (even count)

    def to_dict(self) -> dict[str, object]:
        return {"episodes_per_rollout": self.episodes, "successes": self.successes,
                "pairwise_cosine_mean": float(np.mean(self.cosines)),
                "pairwise_cosine_sd": float(np.std(self.cosines)),
                "pairwise_cosines": self.cosines,
                "sign_agreement_mean": float(np.mean(self.sign_agreement)),
                "halves_cosine": self.halves_cosine}


def gradient_estimate(trainer: Trainer, venv: gym.vector.VectorEnv, iteration: int
                      ) -> tuple[torch.Tensor, int]:
    """The flattened gradient of one iteration's surrogate at ratio 1 (module docstring)
    over the rollout of ``iteration``, and the rollout's successes."""
    out = trainer.rollout(venv, iteration)
    batch, cfg = out["batch"], trainer.cfg.dppo
    adv = normalised_advantages(batch["adv"])  # as PPO's update normalises them
    params = tuned_parameters(trainer.actor, trainer.cfg.tune)
    for p in params:
        p.grad = None
    n = len(adv)
    for first in range(0, n, CHUNK):
        rows = slice(first, first + CHUNK)
        logp = chain_log_prob(trainer.actor, trainer.consts, batch["s"][rows],
                              batch["chain"][rows], cfg)
        loss = ppo_policy_loss(logp, logp.detach(), adv[rows], cfg)["pg_loss"]
        (loss * len(logp) / n).backward()  # the mean over the whole batch
    grad = torch.cat([p.grad.detach().flatten() if p.grad is not None
                      else torch.zeros(p.numel(), dtype=p.dtype) for p in params])
    return grad, int(out["wins"].sum())


def _cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    return float((u @ v) / (u.norm() * v.norm()).clamp(min=1e-30))


def gradient_agreement(task: str, cfg: RlConfig, rollouts: int, run_dir: Path,
                       on_rollout: Callable[[int, int], None] | None = None) -> Agreement:
    """Estimates from ``rollouts`` independent rollouts of ``cfg.envs`` episodes each of the
    policy ``cfg.init`` (nothing is trained; ``run_dir`` must not hold a run) and how
    well they agree; ``on_rollout(r, successes)`` after each rollout."""
    if rollouts < 2:
        raise ValueError(f"the agreement needs at least 2 rollouts, got {rollouts}")
    trainer = Trainer(task, cfg, run_dir)
    if trainer.start:
        raise ValueError(f"{run_dir} holds an RL run: the probe measures the initial policy")
    venv = make_vector_env(task, len(trainer.envs), trainer.policy.cfg.chunk,
                           cfg.asynchronous)
    try:
        check_obs_dim(trainer.policy, task, venv.single_observation_space)
        est = []
        for r in range(rollouts):
            est.append(gradient_estimate(trainer, venv, r))
            if on_rollout is not None:
                on_rollout(r, est[-1][1])
    finally:
        venv.close()
    grads = [g for g, _ in est]
    pairs = list(itertools.combinations(range(rollouts), 2))
    half = rollouts // 2
    halves = (_cosine(sum(grads[:half]), sum(grads[half:])) if rollouts % 2 == 0 and half > 1
              else None)
    return Agreement(
        episodes=cfg.envs, successes=[w for _, w in est],
        cosines=[_cosine(grads[i], grads[j]) for i, j in pairs],
        sign_agreement=[float((grads[i].sign() == grads[j].sign()).double().mean())
                        for i, j in pairs],
        halves_cosine=halves)
