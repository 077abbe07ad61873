"""DAgger (Ross et al. 2011) for the diffusion policies: roll the learner out, label every
state it visits with the scripted expert, aggregate, retrain.

Round 0 is behaviour cloning on the expert demonstrations. Each later round ``r``:

1. rolls out the round ``r - 1`` policy on ``episodes`` fresh seeds (``DAGGER_SEED0 +
   1000 r + i``, apart from the demonstration seeds from 0 and the evaluation seeds from
   10 000); per action chunk the expert acts instead with probability ``beta_r = beta0 *
   decay^(r - 1)`` (the mixture policy of DAgger), the learner otherwise;
2. labels every visited state with the expert's action there (the experts are memoryless,
   ``phase_from_state``, so they answer for states their own episodes never reach) and
   keeps what was executed as ``executed_actions``;
3. writes the aggregate, the demonstrations plus every round's relabelled episodes (each
   demo group carries its provenance: source ``dagger``, round, beta, policy), as one
   robomimic HDF5 file;
4. trains on the aggregate, starting from the round ``r - 1`` weights and normalisers,
   for ``round_iterations`` iterations.

Everything lands in one directory; ``dagger.json`` records the finished rounds with the
success rate of their rollouts, so a run that is stopped resumes where it was (a round's
training resumes from its own last checkpoint), and the final policy is copied to the
directory itself, which is then an ordinary checkpoint for ``eval``, ``compile`` and the
runtime.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardware.atomic import AtomicFile
from hardware.sim.collect import obs_splitter
from hardware.sim.dataset import DemoWriter, Episode, open_demos, read_episodes
from hardware.sim.dataset import env_args as read_env_args
from hardware.sim.layout import obs_fields
from hardware.sim.registry import make_env, make_expert, task_env
from policies.bc import TrainConfig, train_bc
from policies.checkpoint import CONFIG, WEIGHTS, load_policy
from policies.config import PolicyConfig
from policies.data import DemoDataError, bc_windows
from policies.policy import DiffusionPolicy

DAGGER_SEED0 = 20_000
STATE = "dagger.json"
AGGREGATE = "aggregate.hdf5"


@dataclass
class DaggerConfig:
    """``rounds`` after the BC round 0; ``episodes`` learner rollouts per round;
    ``beta0``/``decay``: expert share of the chunks in round 1 and its factor per round;
    ``round_iterations``: training iterations per round (round 0 uses the training
    config's own)."""

    rounds: int = 3
    episodes: int = 100
    beta0: float = 0.5
    decay: float = 0.5
    round_iterations: int = 6000
    batch: int = 25

    def beta(self, r: int) -> float:
        return self.beta0 * self.decay ** (r - 1)


@dataclass
class RoundRecord:
    round: int
    beta: float
    episodes: int
    successes: int
    samples: int

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes, 1)


@dataclass
class DaggerResult:
    out_dir: Path
    rounds: list[RoundRecord] = field(default_factory=list)


def relabelled_rollouts(policy: DiffusionPolicy, task: str, seeds: list[int], beta: float,
                        rng_seed: int, provenance: dict[str, Any], batch: int = 25,
                        on_episode: Callable[[Episode], None] | None = None) -> list[Episode]:
    """Roll out ``policy`` mixed with the expert (per chunk, expert with probability
    ``beta``) on ``seeds``, ``batch`` envs in lock-step; every step is labelled with the
    expert's action. Deterministic given ``rng_seed``."""
    policy.eval()
    chunk = policy.cfg.chunk
    mix = np.random.default_rng(rng_seed)
    gen = torch.Generator().manual_seed(rng_seed)
    envs = [make_env(task) for _ in range(min(batch, len(seeds)))]
    experts = [make_expert(task, env) for env in envs]
    split = obs_splitter(envs[0])
    out: list[Episode] = []
    try:
        for first in range(0, len(seeds), len(envs)):
            group = list(range(min(len(envs), len(seeds) - first)))
            keys = ("obs", "label", "exe", "rew", "done", "state", "phase")
            rec: list[dict[str, list]] = [{k: [] for k in keys} for _ in group]
            obs = [envs[i].reset(seed=seeds[first + i])[0] for i in group]
            won = [False] * len(group)
            ended = [False] * len(group)
            live = list(group)
            while live:
                learner = [i for i in live if mix.random() >= beta]
                plans = dict(zip(learner, policy.act(np.stack([obs[i] for i in learner]),
                                                     generator=gen), strict=True)) \
                    if learner else {}
                for i in live:
                    env, expert, r = envs[i], experts[i], rec[i]
                    data = env.unwrapped.data
                    for j in range(chunk):
                        label = np.asarray(expert.act(obs[i]), np.float64)
                        r["phase"].append(expert.phase)
                        action = plans[i][j] if i in plans else label
                        r["state"].append(np.concatenate([data.qpos, data.qvel]))
                        r["obs"].append(obs[i])
                        r["label"].append(label)
                        r["exe"].append(np.asarray(action, np.float64))
                        obs[i], reward, term, trunc, info = env.step(action)
                        r["rew"].append(reward)
                        r["done"].append(bool(term))
                        if term or trunc:
                            won[i], ended[i] = bool(info.get("success", term)), True
                            break
                live = [i for i in live if not ended[i]]
            for i in group:
                r = rec[i]
                ep = Episode(obs=split(np.asarray(r["obs"])), actions=np.asarray(r["label"]),
                             rewards=np.asarray(r["rew"]), dones=np.asarray(r["done"]),
                             seed=seeds[first + i], success=won[i],
                             states=np.asarray(r["state"]), executed_actions=np.asarray(r["exe"]),
                             phases=np.asarray(r["phase"]),
                             provenance=dict(provenance))
                out.append(ep)
                if on_episode is not None:
                    on_episode(ep)
    finally:
        for env in envs:
            env.close()
    return out


def _read_state(out_dir: Path) -> list[RoundRecord]:
    path = out_dir / STATE
    if not path.exists():
        return []
    return [RoundRecord(**r) for r in json.loads(path.read_text(encoding="utf-8"))["rounds"]]


def _write_state(out_dir: Path, records: list[RoundRecord], meta: dict[str, Any]) -> None:
    with AtomicFile(out_dir / STATE) as tmp:
        tmp.write_text(json.dumps({**meta, "rounds": [asdict(r) for r in records]}, indent=1),
                       encoding="utf-8")


def expert_demos(demos: Path, task: str,
                 obs_keys: Sequence[str] | None = None) -> tuple[list[Episode], list[str]]:
    """The demonstrations in ``task``'s observation order (``read_episodes``), their fields
    renamed to the environment's names (the relabelled rollouts' names, so the aggregate
    has one set), and those names."""
    episodes = read_episodes(demos, task, obs_keys)
    with task_env(task) as env:
        names = [f.name for f in obs_fields(env) or []]
    if len(names) != len(episodes[0].obs):
        raise DemoDataError(f"{demos}: {len(episodes[0].obs)} observation fields, {task}'s "
                            f"environment has {len(names)} ({', '.join(names)})")
    for ep in episodes:
        ep.obs = dict(zip(names, ep.obs.values(), strict=True))
    return episodes, names


def _write_aggregate(path: Path, old: list[Episode], new: list[Episode], env_args: dict) -> int:
    """Write the demonstrations ``old`` + ``new`` episodes (atomically); returns the
    episode count."""
    with DemoWriter(path, env_args) as writer:
        for ep in old + new:
            writer.add(ep)
    return len(old) + len(new)


def _publish(run_dir: Path, out_dir: Path) -> None:
    """Copy a round's policy (config + EMA weights) to ``out_dir``, atomically."""
    for name in (WEIGHTS, CONFIG):
        with AtomicFile(out_dir / name) as tmp:
            shutil.copyfile(run_dir / name, tmp)


RoundCallback = Callable[[RoundRecord], None]
EpisodeCallback = Callable[[int, Episode], None]


def _round_rollouts(task: str, out_dir: Path, r: int, cfg: DaggerConfig,
                    env_args: dict[str, Any], on_episode: EpisodeCallback | None
                    ) -> list[Episode]:
    """Round ``r``'s relabelled episodes: read back if already written, else rolled out
    with the round ``r - 1`` policy and written (atomically) to ``round_r/``."""
    path = out_dir / f"round_{r}" / "relabelled.hdf5"
    if path.exists():
        return read_episodes(path)
    prev = out_dir / f"round_{r - 1}"
    policy, _ = load_policy(prev)
    beta = cfg.beta(r)
    seeds = [DAGGER_SEED0 + 1000 * r + i for i in range(cfg.episodes)]
    prov = {"source": "dagger", "labels": "expert", "round": r, "beta": beta,
            "policy": str(prev)}
    cb = None if on_episode is None else (lambda e: on_episode(r, e))
    new = relabelled_rollouts(policy, task, seeds, beta, rng_seed=DAGGER_SEED0 + r,
                              provenance=prov, batch=cfg.batch, on_episode=cb)
    path.parent.mkdir(parents=True, exist_ok=True)
    with DemoWriter(path, {**env_args, "source": "dagger"}) as writer:
        for ep in new:
            writer.add(ep)
    return new


def run_dagger(task: str, demos: Path, out_dir: Path, policy_cfg: PolicyConfig,
               train_cfg: TrainConfig, cfg: DaggerConfig,
               on_step: Callable[[int, int, float], None] | None = None,
               on_episode: EpisodeCallback | None = None,
               on_round: RoundCallback | None = None,
               obs_keys: Sequence[str] | None = None) -> DaggerResult:
    """Round 0 (BC on ``demos``) then ``cfg.rounds`` DAgger rounds in ``out_dir``;
    resumes a stopped run. ``on_step(round, iteration, loss)``, ``on_episode(round,
    episode)`` and ``on_round(record)`` report progress; ``obs_keys``: the demonstration
    file's field order where it does not state it (``hardware.sim.obs_order``)."""
    with open_demos(demos) as fh:
        env_args = read_env_args(fh)
    old, names = expert_demos(demos, task, obs_keys)  # checked before anything is written
    obs_dim, act_dim = policy_cfg.obs_dim, policy_cfg.act_dim
    first = bc_windows(old, demos, policy_cfg.chunk, obs_dim, act_dim)
    env_args = {**env_args, "obs_keys": names}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _read_state(out_dir)
    meta = {"task": task, "demos": str(demos), "config": asdict(cfg),
            "train": asdict(train_cfg)}
    collected: list[Episode] = []
    for r in range(cfg.rounds + 1):
        run_dir = out_dir / f"round_{r}"
        new: list[Episode] = []
        if r > 0:
            new = _round_rollouts(task, out_dir, r, cfg, env_args, on_episode)
            collected += new
        if any(rec.round == r for rec in records):
            continue
        data = first
        if r > 0:
            data_path = out_dir / AGGREGATE
            _write_aggregate(data_path, old, collected,
                             {**env_args, "dagger_rounds": r,
                              "source": f"{env_args.get('source', 'expert')} + dagger"})
            data = bc_windows(old + collected, data_path, policy_cfg.chunk, obs_dim, act_dim)
        tcfg = train_cfg if r == 0 else replace(train_cfg, iterations=cfg.round_iterations,
                                                seed=train_cfg.seed + r)
        step_cb = None if on_step is None else (lambda i, loss, r=r: on_step(r, i, loss))
        train_bc(task, data, policy_cfg, tcfg, run_dir, on_step=step_cb,
                 init=None if r == 0 else out_dir / f"round_{r - 1}")
        rec = RoundRecord(round=r, beta=cfg.beta(r) if r > 0 else 1.0, episodes=len(new),
                          successes=sum(e.success for e in new), samples=len(data))
        records.append(rec)
        _publish(run_dir, out_dir)
        _write_state(out_dir, records, meta)
        if on_round is not None:
            on_round(rec)
    return DaggerResult(out_dir=out_dir, rounds=records)
