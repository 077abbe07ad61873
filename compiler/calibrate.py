"""Calibration data for a compile: states the policy will see and the denoiser inputs they
lead to.

States come from the task's scripted expert (seeds from ``CALIB_SEED0``, apart from the
training seeds from 0 and the evaluation seeds from 10000). Each state is then denoised
with the folded float network and the numpy sampler (DDPM, all K steps), and every
evaluation's inputs (x_k, k, state) are recorded: the distribution the graded-input range,
the firing-rate calibration and the golden vectors are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.sim.registry import TASKS, make_env, make_expert
from runtime.network import FoldedNet
from runtime.sampler import Sampler

CALIB_SEED0 = 20000


@dataclass
class Calibration:
    obs: np.ndarray  # (N, obs_dim) raw state of each recorded evaluation
    x: np.ndarray  # (N, A) noisy chunk
    k: np.ndarray  # (N,) step index

    def __len__(self) -> int:
        return len(self.k)

    def subset(self, count: int) -> Calibration:
        """``count`` records spread evenly over the set (all steps k represented)."""
        idx = np.linspace(0, len(self) - 1, min(count, len(self))).round().astype(int)
        return Calibration(obs=self.obs[idx], x=self.x[idx], k=self.k[idx])


def expert_episodes(task: str, episodes: int, seed0: int = CALIB_SEED0
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observations (L + 1, obs_dim), actions (L, act_dim)) of ``episodes``
    scripted-expert episodes of a cabin task, seeds ``seed0 ..``."""
    if task not in TASKS:
        raise ValueError(f"calibration needs a cabin task with an expert, got {task!r}")
    env = make_env(task)
    expert = make_expert(task, env)
    out = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed0 + ep)
            expert.reset()
            seq, acts, done = [np.asarray(obs, np.float64)], [], False
            while not done:
                acts.append(np.asarray(expert.act(obs), np.float64))
                obs, _, term, trunc, _ = env.step(acts[-1])
                seq.append(np.asarray(obs, np.float64))
                done = term or trunc
            out.append((np.asarray(seq), np.asarray(acts)))
    finally:
        env.close()
    return out


def expert_states(task: str, episodes: int, seed0: int = CALIB_SEED0) -> np.ndarray:
    """Observations along ``episodes`` scripted-expert episodes of a cabin task (each
    one an action answered)."""
    return np.concatenate([obs[:-1] for obs, _ in expert_episodes(task, episodes, seed0)])


def record_denoising(net: FoldedNet, sampler: Sampler, obs: np.ndarray,
                     seed: int = 0) -> Calibration:
    """Run a DDPM chain per state with ``net`` and record every evaluation's inputs."""
    xs, ks, ss = [], [], []

    def eps_fn(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        xs.append(x.copy())
        ks.append(k.copy())
        ss.append(obs)
        return net.eps(x, k, obs)

    sampler.sample(eps_fn, len(obs), net.action_size, np.random.default_rng(seed))
    return Calibration(obs=np.concatenate(ss), x=np.concatenate(xs), k=np.concatenate(ks))
