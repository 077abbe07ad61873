"""Behaviour-cloning samples from demonstration files: (observation, action chunk) pairs.

For every step ``t`` of a successful demonstration, and of every DAgger episode (whose
actions are expert labels of the states the learner visited, so they teach even where
the learner failed): ``obs[t]`` and ``actions[t : t + chunk]``; chunks running past the
end repeat the last action (the expert's final command), as Diffusion Policy pads its
sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hardware.errors import SpikeflightError
from hardware.sim.dataset import read_episodes


class DemoDataError(SpikeflightError):
    """Demonstrations unusable for training (wrong sizes, NaN, no successes)."""


@dataclass
class BcData:
    obs: torch.Tensor  # (N, obs_dim) float32
    actions: torch.Tensor  # (N, chunk, act_dim) float32
    episodes: int

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def load_bc_data(path: str | Path, chunk: int, obs_dim: int, act_dim: int) -> BcData:
    """Read, check and window the successful (or relabelled) episodes of ``path``."""
    episodes = read_episodes(path)
    good = [ep for ep in episodes if ep.success or ep.relabelled]
    if not good:
        raise DemoDataError(f"{path}: none of its {len(episodes)} episodes is successful")
    obs_l, act_l = [], []
    for i, ep in enumerate(good):
        obs = np.concatenate([v.reshape(ep.length, -1) for v in ep.obs.values()], axis=1)
        if obs.shape[1] != obs_dim:
            raise DemoDataError(f"{path}: observations have {obs.shape[1]} values per step, "
                                f"the task expects {obs_dim}")
        if ep.actions.shape[1] != act_dim:
            raise DemoDataError(f"{path}: actions have {ep.actions.shape[1]} values per step, "
                                f"the task expects {act_dim}")
        for name, arr in (("obs", obs), ("actions", ep.actions)):
            if not np.isfinite(arr).all():
                row = int(np.argwhere(~np.isfinite(arr))[0, 0])
                raise DemoDataError(f"{path}: non-finite value (NaN/inf) in {name} of the "
                                    f"training episode {i} (seed {ep.seed}), step {row}")
        pad = np.concatenate([ep.actions, np.repeat(ep.actions[-1:], chunk - 1, axis=0)])
        idx = np.arange(ep.length)[:, None] + np.arange(chunk)[None, :]
        obs_l.append(obs)
        act_l.append(pad[idx])
    return BcData(obs=torch.as_tensor(np.concatenate(obs_l), dtype=torch.float32),
                  actions=torch.as_tensor(np.concatenate(act_l), dtype=torch.float32),
                  episodes=len(good))
