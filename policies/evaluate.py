"""Closed-loop evaluation: seeded episodes run in lock-step batches, one policy call per
replanning for the whole batch; success with a Wilson 95% interval, episode length and,
for spiking policies, measured firing rates.

On the cabin tasks every failed episode is also given a failure category
(``hardware.sim.monitor``), and with ``takeover=True`` the scripted expert takes over each
failed episode at a random chunk boundary (the state restored exactly) and is given the
steps the learner had left: how often it still succeeds says whether the learner's
failures are recoverable, i.e. whether the expert can teach from the states the learner
reaches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from hardware.errors import SpikeflightError
from hardware.sim.monitor import CATEGORIES, EpisodeMonitor
from hardware.sim.registry import TASKS, make_env, make_expert
from hardware.stats import wilson_interval
from policies.policy import DiffusionPolicy

EVAL_SEED0 = 10_000  # held out: demonstrations use seeds from 0


class EvalError(SpikeflightError):
    """A policy that cannot be evaluated on the task asked for."""


@dataclass
class EvalResult:
    task: str
    episodes: int
    successes: int
    lengths: list[int]
    chunks: int
    firing_rates: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    takeover_episodes: int = 0
    takeover_successes: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    @property
    def success_ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)


def check_obs_dim(policy: DiffusionPolicy, task: str, space: gym.spaces.Space) -> None:
    """``EvalError`` unless ``task``'s observations (``space``) fit the policy."""
    obs_dim = int(np.prod(space.shape))
    if obs_dim != policy.cfg.obs_dim:
        raise EvalError(f"the policy takes {policy.cfg.obs_dim} observation values, task "
                        f"{task!r} gives {obs_dim} (trained for another task, or on an older "
                        "observation layout: retrain it)")


def evaluate(policy: DiffusionPolicy, task: str, episodes: int, seed0: int = EVAL_SEED0,
             batch: int = 25, ddim_steps: int | None = None, execute: int | None = None,
             on_episode: Callable[[int, int], None] | None = None,
             takeover: bool = False) -> EvalResult:
    """Run ``episodes`` episodes with seeds ``seed0 ..``, ``batch`` environments at a time.

    ``execute``: actions of each chunk executed before replanning (default: the whole
    chunk, as trained; fewer replans more often, at proportionally more energy per step).
    ``takeover``: let the expert take over every failed episode (cabin tasks only).
    """
    horizon = policy.cfg.chunk if execute is None else execute
    if not 1 <= horizon <= policy.cfg.chunk:
        raise ValueError(f"execute must be in 1..{policy.cfg.chunk}, got {execute}")
    cabin = task in TASKS
    if takeover and not cabin:
        raise EvalError(f"--takeover needs a scripted expert: the task must be one of "
                        f"{', '.join(TASKS)}, got {task!r}")
    policy.eval()
    snn = policy.spiking
    if snn is not None:
        snn.reset_stats()
        snn.record = True
    gen = torch.Generator().manual_seed(seed0)
    pick = np.random.default_rng(seed0)
    envs = [make_env(task) for _ in range(min(batch, episodes))]
    check_obs_dim(policy, task, envs[0].observation_space)
    monitors = [EpisodeMonitor(e.unwrapped, make_expert(task, e)) for e in envs] if cabin else []
    res = EvalResult(task=task, episodes=episodes, successes=0, lengths=[], chunks=0,
                     failures=dict.fromkeys(CATEGORIES, 0) if cabin else {})
    try:
        for first in range(0, episodes, len(envs)):
            group = envs[: min(len(envs), episodes - first)]
            obs = [env.reset(seed=seed0 + first + i)[0] for i, env in enumerate(group)]
            for mon in monitors:
                mon.reset()
            live = list(range(len(group)))
            steps = [0] * len(group)
            won = [False] * len(group)
            done = [False] * len(group)
            snaps: list[list] = [[] for _ in group]
            while live:
                if takeover:
                    for i in live:
                        snaps[i].append(group[i].unwrapped.get_state())
                plan = policy.act(np.stack([obs[i] for i in live]), generator=gen,
                                  ddim_steps=ddim_steps)
                res.chunks += len(live)
                for row, i in enumerate(live):
                    for action in plan[row][:horizon]:
                        obs[i], _, term, trunc, info = group[i].step(action)
                        steps[i] += 1
                        if cabin:
                            monitors[i].observe()
                        if term or trunc:
                            won[i], done[i] = bool(info.get("success", term)), True
                            break
                live = [i for i in live if not done[i]]
            for i, ok in enumerate(won):
                if ok or not cabin:
                    continue
                res.failures[monitors[i].category()] += 1
                if takeover:
                    res.takeover_episodes += 1
                    res.takeover_successes += expert_takes_over(
                        group[i], snaps[i][int(pick.integers(len(snaps[i])))])
            res.successes += sum(won)
            res.lengths += steps
            if on_episode is not None:
                on_episode(len(group), sum(won))
    finally:
        for env in envs:
            env.close()
        if snn is not None:
            snn.record = False
    res.firing_rates = snn.firing_rates() if snn is not None else []
    return res


def expert_takes_over(env: gym.Env, state: dict) -> bool:
    """Restore ``state`` and let the task's expert act for the steps left: success?"""
    cabin = env.unwrapped
    obs = cabin.set_state(state)
    expert = make_expert(cabin.NAME, env)
    for _ in range(cabin.max_steps - cabin.steps):
        obs, _, term, trunc, _ = cabin.step(expert.act(obs))
        if term or trunc:
            return bool(term)
    return False
