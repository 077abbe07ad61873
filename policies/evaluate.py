"""Closed-loop evaluation: seeded episodes run in lock-step batches, one policy call per
replanning for the whole batch; success with a Wilson 95% interval, episode length and,
for spiking policies, measured firing rates.

Episodes form blocks of ``batch`` (seeds ``seed0 + j batch ..``), and block j draws its
noise from its own generator seeded ``seed0 + j batch``, so a result depends on the
seeds and the batch size only, not on how blocks are spread: ``evaluate_checkpoint`` runs
the blocks in ``workers`` processes (each builds its environments once and reuses them
across its blocks) and gives the same result for any worker count. At most ``workers x
batch`` environments exist at once.

On the cabin tasks every failed episode is also given a failure category and the furthest
expert phase it reached (``hardware.sim.monitor``), and with ``takeover=True`` the
scripted expert takes over each failed episode at a random chunk boundary (the state
restored exactly) and is given the steps the learner had left: how often it still
succeeds says whether the learner's failures are recoverable, i.e. whether the expert can
teach from the states the learner reaches.
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
    furthest: dict[str, int] = field(default_factory=dict)  # failed episodes by furthest phase
    takeover_episodes: int = 0
    takeover_successes: int = 0
    spike_samples: int = 0  # batch x micro-steps behind ``firing_rates``

    def merge(self, other: EvalResult) -> EvalResult:
        """This result and ``other`` (later seeds) as one; firing rates weighted exactly
        by their samples."""
        n = self.spike_samples + other.spike_samples
        rates = [(a * self.spike_samples + b * other.spike_samples) / n
                 for a, b in zip(self.firing_rates, other.firing_rates, strict=True)] \
            if n else (self.firing_rates or other.firing_rates)
        return EvalResult(
            task=self.task, episodes=self.episodes + other.episodes,
            successes=self.successes + other.successes, lengths=self.lengths + other.lengths,
            chunks=self.chunks + other.chunks, firing_rates=rates,
            failures=_add_counts(self.failures, other.failures),
            furthest=_add_counts(self.furthest, other.furthest),
            takeover_episodes=self.takeover_episodes + other.takeover_episodes,
            takeover_successes=self.takeover_successes + other.takeover_successes,
            spike_samples=n)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    @property
    def success_ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Per-key sums of two counters, in ``a``'s key order, then ``b``'s new keys."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


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
             takeover: bool = False, envs: list[gym.Env] | None = None) -> EvalResult:
    """Run ``episodes`` episodes with seeds ``seed0 ..``, ``batch`` environments at a time.
    ``envs``: environments of ``task`` to use (at least ``min(batch, episodes)``; the
    caller keeps and closes them), else built here and closed at the end.

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
    owned = envs is None
    envs = ([make_env(task) for _ in range(min(batch, episodes))] if envs is None
            else envs[:min(batch, episodes)])
    check_obs_dim(policy, task, envs[0].observation_space)
    monitors = [EpisodeMonitor(e.unwrapped, make_expert(task, e)) for e in envs] if cabin else []
    res = EvalResult(task=task, episodes=episodes, successes=0, lengths=[], chunks=0,
                     failures=dict.fromkeys(CATEGORIES, 0) if cabin else {},
                     furthest=dict.fromkeys(monitors[0].expert.PHASES, 0) if cabin else {})
    try:
        for first in range(0, episodes, len(envs)):
            gen = torch.Generator().manual_seed(seed0 + first)  # per block: see the docstring
            pick = np.random.default_rng(seed0 + first)
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
                res.furthest[monitors[i].furthest()] += 1
                if takeover:
                    res.takeover_episodes += 1
                    res.takeover_successes += expert_takes_over(
                        group[i], snaps[i][int(pick.integers(len(snaps[i])))])
            res.successes += sum(won)
            res.lengths += steps
            if on_episode is not None:
                on_episode(len(group), sum(won))
    finally:
        for env in envs if owned else []:
            env.close()
        if snn is not None:
            snn.record = False
    res.firing_rates = snn.firing_rates() if snn is not None else []
    res.spike_samples = snn.spike_samples if snn is not None else 0
    return res


def _block(args: tuple) -> EvalResult:
    """One worker's share: load the checkpoint (once per process) and evaluate a block."""
    from policies.checkpoint import load_policy

    checkpoint, task, n, seed0, batch, kwargs = args
    torch.set_num_threads(1)
    if _WORKER.get("key") != (checkpoint, task, batch):
        _WORKER.update(key=(checkpoint, task, batch), policy=load_policy(checkpoint)[0],
                       envs=[make_env(task) for _ in range(batch)])
    return evaluate(_WORKER["policy"], task, n, seed0=seed0, batch=batch,
                    envs=_WORKER["envs"], **kwargs)


_WORKER: dict = {}  # a worker process's policy and environments, reused across blocks


def evaluate_checkpoint(checkpoint: str, policy: DiffusionPolicy, task: str, episodes: int,
                        workers: int, seed0: int = EVAL_SEED0, batch: int = 25,
                        on_episode: Callable[[int, int], None] | None = None,
                        **kwargs: object) -> EvalResult:
    """``evaluate`` with its blocks spread over ``workers`` processes (``workers == 1``:
    in this process, with ``policy``); the same result for any ``workers``."""
    if workers < 1 or batch < 1:
        raise ValueError(f"workers and batch must be >= 1, got {workers} and {batch}")
    if workers == 1 or episodes <= batch:
        return evaluate(policy, task, episodes, seed0=seed0, batch=batch,
                        on_episode=on_episode, **kwargs)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(checkpoint, task, min(batch, episodes - first), seed0 + first, batch, kwargs)
            for first in range(0, episodes, batch)]
    ctx = multiprocessing.get_context("spawn")  # no forked torch or MuJoCo state
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
        results = []
        for res in pool.map(_block, jobs):
            results.append(res)
            if on_episode is not None:
                on_episode(res.episodes, res.successes)
    out = results[0]
    for res in results[1:]:
        out = out.merge(res)
    return out


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
