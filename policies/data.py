"""Behaviour-cloning samples from demonstration files: (observation, action chunk) pairs.

For every step ``t`` of a successful demonstration, and of every DAgger episode (whose
actions are expert labels of the states the learner visited, so they teach even where
the learner failed): ``obs[t]`` and ``actions[t : t + chunk]``; chunks running past the
end repeat the last action (the expert's final command), as Diffusion Policy pads its
sequences. ``phases[t]`` is the labelling expert's task phase there (-1 where the file
does not record it), which phase-balanced sampling uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from hardware.errors import SpikeflightError
from hardware.sim.action_frame import ActionFrame
from hardware.sim.dataset import Episode, read_episodes

MAX_ABS_VALUE = 1e30  # beyond this, float32 min-max normalisers overflow


class DemoDataError(SpikeflightError):
    """Demonstrations unusable for training (wrong sizes, NaN, no successes)."""


def check_values(path: str | Path, name: str, arr: np.ndarray, where: str) -> None:
    """``DemoDataError`` naming the first step of ``arr`` that is not finite or whose
    magnitude exceeds ``MAX_ABS_VALUE`` (training runs in float32)."""
    flat = np.asarray(arr).reshape(len(arr), -1)
    bad = ~np.isfinite(flat) | (np.abs(np.nan_to_num(flat)) > MAX_ABS_VALUE)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        value = float(flat[row, col])
        raise DemoDataError(f"{path}: {name} of {where}, step {row}: {value:g} is a "
                            f"non-finite value or beyond +-{MAX_ABS_VALUE:g} (training runs "
                            "in float32)")


@dataclass
class BcData:
    obs: torch.Tensor  # (N, obs_dim) float32
    actions: torch.Tensor  # (N, chunk, act_dim) float32
    episodes: int
    phases: torch.Tensor | None = None  # (N,) int64, -1 where unknown

    def sample_weights(self, balance: float) -> torch.Tensor | None:
        """Per-sample probabilities with each sample's weight ``n_p ** -balance``, where
        ``n_p`` counts the samples of its expert phase: 0 is uniform (``None``), 1 gives
        every phase the same share of the batches, so the short catch and grasp phases
        are not drowned by the long transport phases. Samples of unknown phase count as
        one phase of their own."""
        if balance == 0 or self.phases is None:
            return None
        _, inverse, counts = torch.unique(self.phases, return_inverse=True,
                                          return_counts=True)
        w = counts.double().pow(-balance)[inverse]
        return w / w.sum()

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def in_frame(self, frame: ActionFrame) -> BcData:
        """The same windows with each world-frame action chunk expressed in ``frame`` at
        its first observation (the world frame: unchanged)."""
        if frame.name == "world":
            return self
        turned = frame.from_world(self.obs.numpy(), self.actions.numpy())
        return replace(self, actions=torch.as_tensor(turned, dtype=torch.float32))


def load_bc_data(path: str | Path, chunk: int, obs_dim: int, act_dim: int,
                 task: str | None = None, obs_keys: Sequence[str] | None = None) -> BcData:
    """Read, check and window the successful (or relabelled) episodes of ``path``, their
    observation fields in ``task``'s order (``read_episodes``)."""
    return bc_windows(read_episodes(path, task, obs_keys), path, chunk, obs_dim, act_dim)


def bc_windows(episodes: Sequence[Episode], path: str | Path, chunk: int, obs_dim: int,
               act_dim: int) -> BcData:
    """Check and window the successful (or relabelled) ``episodes`` already read from
    ``path`` (named in the errors)."""
    good = [ep for ep in episodes if ep.success or ep.relabelled]
    if not good:
        raise DemoDataError(f"{path}: none of its {len(episodes)} episodes is successful")
    obs_l, act_l, phase_l = [], [], []
    for i, ep in enumerate(good):
        obs = np.concatenate([v.reshape(ep.length, -1) for v in ep.obs.values()], axis=1)
        if obs.shape[1] != obs_dim:
            raise DemoDataError(f"{path}: observations have {obs.shape[1]} values per step, "
                                f"the task expects {obs_dim}")
        if ep.actions.shape[1] != act_dim:
            raise DemoDataError(f"{path}: actions have {ep.actions.shape[1]} values per step, "
                                f"the task expects {act_dim}")
        for name, arr in (("obs", obs), ("actions", ep.actions)):
            check_values(path, name, arr, f"the training episode {i} (seed {ep.seed})")
        pad = np.concatenate([ep.actions, np.repeat(ep.actions[-1:], chunk - 1, axis=0)])
        idx = np.arange(ep.length)[:, None] + np.arange(chunk)[None, :]
        obs_l.append(obs)
        act_l.append(pad[idx])
        phase_l.append(ep.phases if ep.phases is not None else np.full(ep.length, -1))
    return BcData(obs=torch.as_tensor(np.concatenate(obs_l), dtype=torch.float32),
                  actions=torch.as_tensor(np.concatenate(act_l), dtype=torch.float32),
                  episodes=len(good),
                  phases=torch.as_tensor(np.concatenate(phase_l), dtype=torch.int64))
