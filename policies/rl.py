"""L-SDPPO fine-tuning: DPPO (``policies/dppo.py``) on vectorized rollouts of a task,
starting from a behaviour-cloned checkpoint, resumable, written as an ordinary checkpoint.

One iteration: every one of ``envs`` environments runs one episode (seeded from the run's
seed, the iteration and the env index), a chunk decision at a time, all decisions of a
step batched through the policy; each env's transitions after its episode ended are
masked out. The reward of a chunk is 1 if the episode succeeded in it and 0 otherwise
(``reward="success"``, the default), or its actions' shaped rewards summed
(``"shaped"``: beware, a shaped reward paid every step makes it pay to put success
off, since success ends the episode: on cap, 25 iterations raised the shaped return
from 68 to 114 and took held-out success from 86% to 0%). Rewards are scaled by the
running return std, and an episode's end (success or time limit) stops bootstrapping.
Then GAE, and PPO epochs on the valid transitions (critic only during the first ``critic_warmup``
iterations). The SDLI gate runs at its full strength throughout, in sampling, in the
log-prob recomputation and in evaluation.

Because each iteration starts its episodes afresh from seeds, a run stopped between
iterations resumes exactly: weights, both optimisers, the reward scaler and the RNG are
checkpointed after every iteration. ``asynchronous`` runs each env in its own process
(gymnasium ``AsyncVectorEnv``); the results equal the in-process ``SyncVectorEnv``'s.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hardware.atomic import AtomicFile
from hardware.sim.registry import make_env
from policies.checkpoint import load_policy, load_train_state, save_run
from policies.dist import Comm
from policies.dppo import (
    Critic,
    DppoConfig,
    RewardScaler,
    StepConstants,
    gae,
    sample_chain,
    update,
)
from policies.evaluate import EVAL_SEED0, check_obs_dim, evaluate

RL_STATE = "rl_state.pt"


@dataclass
class RlConfig:
    iterations: int = 50
    envs: int = 8
    asynchronous: bool = True
    epochs: int = 5
    minibatch: int = 256
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    critic_warmup: int = 2
    eval_every: int = 10  # iterations between held-out evaluations (0: never)
    eval_episodes: int = 20
    seed: int = 0
    threads: int = 1
    init: str = ""  # the checkpoint fine-tuning starts from (the frozen early steps)
    reward: str = "success"  # "success": 1 on the chunk that succeeds; "shaped": env's sum
    tune: str = "all"  # "readout": only the graded output maps (``tuned_parameters``)
    dppo: DppoConfig = field(default_factory=DppoConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IterationStats:
    iteration: int
    episodes: int
    successes: int
    mean_return: float
    env_steps: int
    update: dict[str, float]
    firing_rates: list[float]
    seconds: float = 0.0  # wall time of the rollout and the update (no evaluation)
    eval_success: float | None = None


class ChunkEnv(gym.Wrapper):
    """One step = one action chunk (chunk, act_dim): its actions in turn until the episode
    ends; reward summed; ``info['success']`` and the env steps taken (``info['steps']``)."""

    def __init__(self, env: gym.Env, chunk: int) -> None:
        super().__init__(env)
        inner = env.action_space
        self.chunk = chunk
        self.action_space = gym.spaces.Box(np.repeat(inner.low[None], chunk, 0),
                                           np.repeat(inner.high[None], chunk, 0),
                                           dtype=inner.dtype)

    def step(self, action: np.ndarray):
        total, info, steps = 0.0, {}, 0
        for a in action:
            obs, r, term, trunc, info = self.env.step(a)
            total += float(r)
            steps += 1
            if term or trunc:
                break
        info = {**info, "success": bool(info.get("success", term)), "steps": steps}
        return obs, total, bool(term), bool(trunc), info


def make_vector_env(task: str, envs: int, chunk: int, asynchronous: bool) -> gym.vector.VectorEnv:
    fns = [lambda: ChunkEnv(make_env(task), chunk) for _ in range(envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="spawn")
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def _info(info: dict[str, Any], key: str, done: np.ndarray, default: Any) -> np.ndarray:
    """Per-env ``key`` of a vector step's info: an env whose episode ended in this step
    was reset in it too (same-step autoreset), so its value is in ``final_info``."""
    out = np.full(len(done), default)
    for src, rows in ((info, ~done), (info.get("final_info", {}), done)):
        if key in src:
            m = src[f"_{key}"] & rows
            out[m] = src[key][m]
    return out


def _seeds(seed: int, iteration: int, envs: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([seed, iteration]).generate_state(envs)]


READOUT = ("readout.", "state_readout.")  # the denoiser's graded output maps
TUNE = ("all", "readout")


def tuned_parameters(actor: torch.nn.Module, tune: str) -> list[torch.nn.Parameter]:
    """The actor's parameters PPO moves: all, or (``"readout"``) only the graded maps from
    the spike counts and the state current to the output, so the spikes stay those of
    the imitation and the gradient needs no surrogate."""
    if tune not in TUNE:
        raise ValueError(f"tune must be one of {', '.join(TUNE)}, got {tune!r}")
    if tune == "all":
        return list(actor.parameters())
    return [p for name, p in actor.named_parameters() if name.startswith(READOUT)]


class Trainer:
    """Holds the policy (actor = its denoiser), the frozen copy, the critic, the
    optimisers and the RNG of a run; ``run(iteration)`` does one iteration."""

    def __init__(self, task: str, cfg: RlConfig, run_dir: Path, comm: Comm | None = None
                 ) -> None:
        if cfg.reward not in ("success", "shaped"):
            raise ValueError(f"reward must be 'success' or 'shaped', got {cfg.reward!r}")
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.task, self.cfg, self.run_dir = task, cfg, Path(run_dir)
        self.comm = comm or Comm()
        self.envs = self.comm.share(cfg.envs)  # this rank's env indices
        if not len(self.envs):
            raise ValueError(f"{cfg.envs} envs cannot be shared by {self.comm.world} ranks")
        self.policy, saved = load_policy(cfg.init)
        self.saved = saved
        self.frozen = copy.deepcopy(self.policy.denoiser).eval()
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.actor = self.policy.denoiser
        snn = self.policy.spiking
        if snn is not None and snn.sdli is not None:
            snn.sdli.set_ramp(1, 0)  # full strength: the gate the policy was trained with
        self.consts = StepConstants.of(self.policy.schedule)
        self.critic = Critic(self.policy.cfg.obs_dim)
        tuned = tuned_parameters(self.actor, cfg.tune)
        for p in set(self.actor.parameters()) - set(tuned):
            p.requires_grad_(False)  # no gradient (nor surrogate) where nothing moves
        self.actor_opt = torch.optim.Adam(tuned, lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.scaler = RewardScaler(len(self.envs), cfg.dppo.gamma, self.comm)
        self.history: list[dict[str, Any]] = []
        self.start = 0
        if (self.run_dir / RL_STATE).exists():
            self.start = self._restore()

    # --- checkpoints ---------------------------------------------------------------------
    def save(self, iteration: int) -> None:
        """An ordinary checkpoint (``eval``, ``compile`` take it) plus the RL state,
        written by rank 0 (every rank holds the same weights)."""
        if not self.comm.main:
            return
        save_run(self.run_dir, self.policy, self.policy, self.actor_opt, self.gen, self.task,
                 {"rl": self.cfg.to_dict(), "init_train": self.saved.get("train")},
                 iteration, [h["mean_return"] for h in self.history])
        with AtomicFile(self.run_dir / RL_STATE) as tmp:
            torch.save({"critic": self.critic.state_dict(),
                        "critic_opt": self.critic_opt.state_dict(),
                        "scaler": self.scaler.state_dict(), "history": self.history,
                        "iteration": iteration}, tmp)

    def _restore(self) -> int:
        state = torch.load(self.run_dir / RL_STATE, weights_only=False)
        it, _ = load_train_state(self.run_dir, self.policy, self.actor_opt, self.gen)
        self.critic.load_state_dict(state["critic"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.scaler.load_state_dict(state["scaler"])  # its returns are 0 between iterations
        self.history = list(state["history"])
        if it != state["iteration"]:
            raise RuntimeError(f"{self.run_dir}: checkpoint at {it}, RL state at "
                               f"{state['iteration']}")
        return it

    # --- one iteration ---------------------------------------------------------------------
    def _norm(self, obs: np.ndarray) -> torch.Tensor:
        return self.policy.obs_norm(torch.as_tensor(obs, dtype=torch.float32))

    def rollout(self, venv: gym.vector.VectorEnv, iteration: int) -> dict[str, Any]:
        pcfg, n = self.policy.cfg, len(self.envs)
        seeds = _seeds(self.cfg.seed, iteration, self.cfg.envs)
        obs, _ = venv.reset(seed=[seeds[i] for i in self.envs])
        # the noise of an iteration depends on (seed, iteration, rank) only: a resumed run,
        # whatever its rank count, draws what an uninterrupted one with that count draws
        self.gen.manual_seed(_seeds(self.cfg.seed, iteration, self.comm.world)[self.comm.rank])
        live = np.ones(n, bool)
        rec: dict[str, list] = {k: [] for k in ("s", "chain", "logp", "r", "done", "v", "valid")}
        returns, wins, steps = np.zeros(n), np.zeros(n, bool), 0
        snn = self.policy.spiking
        if snn is not None:
            snn.reset_stats()
            snn.record = True
        while self.comm.max(int(live.any())):  # every rank steps as long as any has to
            s = self._norm(obs)
            chain, logp = sample_chain(self.frozen, self.actor, self.consts, s,
                                       pcfg.action_size, self.cfg.dppo, self.gen)
            with torch.no_grad():
                v = self.critic(s)
                act = self.policy.chunk_actions(obs, chain[:, -1].clamp(-1, 1))
            obs, shaped, term, trunc, info = venv.step(act)
            done = term | trunc
            steps += int(np.sum(_info(info, "steps", done, 0)[live]))
            won = _info(info, "success", done, False) & done
            r = won.astype(np.float64) if self.cfg.reward == "success" else shaped
            returns[live] += r[live]
            wins[live & done] = won[live & done]
            rr = self.scaler(torch.as_tensor(r), torch.as_tensor(done), torch.as_tensor(live))
            for key, val in (("s", s), ("chain", chain), ("logp", logp), ("v", v),
                             ("r", rr.float()), ("done", torch.as_tensor(done).float()),
                             ("valid", torch.as_tensor(live.copy()))):
                rec[key].append(val)
            live &= ~done
        if snn is not None:
            snn.record = False
        data = {k: torch.stack(v) for k, v in rec.items()}
        adv, ret = gae(data["r"], data["v"], data["done"], torch.zeros(n),
                       self.cfg.dppo.gamma, self.cfg.dppo.lam)
        m = data["valid"]
        return {"batch": {"s": data["s"][m], "chain": data["chain"][m],
                          "logp": data["logp"][m], "adv": adv[m], "ret": ret[m]},
                "returns": returns, "wins": wins, "steps": steps,
                "rates": snn.firing_rates() if snn is not None else []}

    def run(self, venv: gym.vector.VectorEnv, iteration: int) -> IterationStats:
        t0 = time.perf_counter()
        out = self.rollout(venv, iteration)
        opt = self.actor_opt if iteration >= self.cfg.critic_warmup else None
        stats = update(self.actor, self.critic, opt, self.critic_opt, self.consts,
                       out["batch"], self.cfg.dppo, self.cfg.epochs, self.cfg.minibatch,
                       self.gen, self.comm)
        it = iteration + 1
        tot = self.comm.sum(torch.tensor([float(out["wins"].sum()), float(out["returns"].sum()),
                                          float(out["steps"]), *out["rates"]]))
        rates = (tot[3:] / self.comm.world).tolist()
        res = IterationStats(iteration=it, episodes=self.cfg.envs, successes=int(tot[0]),
                             mean_return=float(tot[1]) / self.cfg.envs, env_steps=int(tot[2]),
                             update=stats, firing_rates=rates,
                             seconds=time.perf_counter() - t0)
        due = self.cfg.eval_every and (it % self.cfg.eval_every == 0 or it == self.cfg.iterations)
        if due and self.comm.main:
            ev = evaluate(self.policy, self.task, self.cfg.eval_episodes, EVAL_SEED0)
            res.eval_success = ev.successes / ev.episodes
            self.policy.denoiser.train()
        self.history.append(asdict(res))
        self.save(it)
        self.comm.barrier()
        return res


def train_rl(task: str, cfg: RlConfig, run_dir: Path,
             on_iteration: Callable[[IterationStats], None] | None = None,
             comm: Comm | None = None) -> list[dict]:
    """Fine-tune ``cfg.init`` on ``task`` for ``cfg.iterations`` iterations into
    ``run_dir`` (resuming there if a run is in it); the per-iteration history. Under
    ``torchrun`` each rank runs its share of the envs (``policies/dist.py``)."""
    trainer = Trainer(task, cfg, run_dir, comm)
    venv = make_vector_env(task, len(trainer.envs), trainer.policy.cfg.chunk, cfg.asynchronous)
    try:
        check_obs_dim(trainer.policy, task, venv.single_observation_space)
        for it in range(trainer.start, cfg.iterations):
            stats = trainer.run(venv, it)
            if on_iteration is not None:
                on_iteration(stats)
    finally:
        venv.close()
    if trainer.comm.main:
        (run_dir / "rl_history.json").write_text(json.dumps(trainer.history, default=float))
    return trainer.history


