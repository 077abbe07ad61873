"""Closed-loop evaluation: seeded episodes run in lock-step batches, one policy call per
replanning for the whole batch; success with a Wilson 95% interval, episode length and,
for spiking policies, measured firing rates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hardware.sim.registry import make_env
from hardware.stats import wilson_interval
from policies.policy import DiffusionPolicy

EVAL_SEED0 = 10_000  # held out: demonstrations use seeds from 0


@dataclass
class EvalResult:
    task: str
    episodes: int
    successes: int
    lengths: list[int]
    chunks: int
    firing_rates: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    @property
    def success_ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)


def evaluate(policy: DiffusionPolicy, task: str, episodes: int, seed0: int = EVAL_SEED0,
             batch: int = 25, ddim_steps: int | None = None, execute: int | None = None,
             on_episode: Callable[[int, int], None] | None = None) -> EvalResult:
    """Run ``episodes`` episodes with seeds ``seed0 ..``, ``batch`` environments at a time.

    ``execute``: actions of each chunk executed before replanning (default: the whole
    chunk, as trained; fewer replans more often, at proportionally more energy per step).
    """
    horizon = policy.cfg.chunk if execute is None else execute
    if not 1 <= horizon <= policy.cfg.chunk:
        raise ValueError(f"execute must be in 1..{policy.cfg.chunk}, got {execute}")
    policy.eval()
    snn = policy.spiking
    if snn is not None:
        snn.reset_stats()
        snn.record = True
    gen = torch.Generator().manual_seed(seed0)
    envs = [make_env(task) for _ in range(min(batch, episodes))]
    successes, lengths, chunks = 0, [], 0
    try:
        for first in range(0, episodes, len(envs)):
            group = envs[: min(len(envs), episodes - first)]
            obs = [env.reset(seed=seed0 + first + i)[0] for i, env in enumerate(group)]
            live = list(range(len(group)))
            steps = [0] * len(group)
            won = [False] * len(group)
            done = [False] * len(group)
            while live:
                plan = policy.act(np.stack([obs[i] for i in live]), generator=gen,
                                  ddim_steps=ddim_steps)
                chunks += len(live)
                for row, i in enumerate(live):
                    for action in plan[row][:horizon]:
                        obs[i], _, term, trunc, info = group[i].step(action)
                        steps[i] += 1
                        if term or trunc:
                            won[i], done[i] = bool(info.get("success", term)), True
                            break
                live = [i for i in live if not done[i]]
            successes += sum(won)
            lengths += steps
            if on_episode is not None:
                on_episode(len(group), sum(won))
    finally:
        for env in envs:
            env.close()
        if snn is not None:
            snn.record = False
    rates = snn.firing_rates() if snn is not None else []
    return EvalResult(task=task, episodes=episodes, successes=successes, lengths=lengths,
                      chunks=chunks, firing_rates=rates)
