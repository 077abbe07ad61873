"""Open-loop prediction error of a world model against recorded episodes of the simulator.

From every ``stride``-th step ``t0`` of every episode the model rolls out the recorded
(executed) actions ``a_t0 .. a_t0+k-1`` on its own predictions, and the k-step error is

    e_k = sqrt(mean_dims((N_s(s_hat_t0+k) - N_s(s_t0+k))^2))

in the model's normalised observation units (``N_s``: its observation normaliser, so 1.0
is half a field's range in the training data), averaged over all starts that have k
recorded steps ahead (k = 1 .. horizon; NaN where no start has). The teacher predicts
every step; the student (``policies.world_model_student``) predicts ``H`` steps at a time,
so its errors exist at k = H, 2H, .. (NaN in between). The baseline "no change" predictor
(``s_hat_t0+k = s_t0``) is reported beside it in the same units. ``*_continuous`` leave
out the flags (dimensions only ever 0 or 1 in the episodes: grasped, locked, ...), whose
switching instant dominates the error of every model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from policies.world_model import EnsembleWorldModel, episode_arrays
from policies.world_model_student import StudentWorldModel


def _starts(episodes: list[Any], horizon: int, stride: int) -> tuple[torch.Tensor, ...]:
    """(s_t0 (S, obs), actions (S, horizon, act), truth (S, horizon, obs), mask (S,
    horizon)): the recorded futures, padded past an episode's end."""
    obs0, acts, truth, mask = [], [], [], []
    for ep in episodes:
        obs, act = episode_arrays(ep)
        for t0 in range(0, ep.length - 1, stride):
            n = min(horizon, ep.length - 1 - t0)
            a = np.repeat(act[t0 + n - 1:t0 + n], horizon, axis=0)
            s = np.repeat(obs[t0 + n:t0 + n + 1], horizon, axis=0)
            a[:n], s[:n] = act[t0:t0 + n], obs[t0 + 1:t0 + 1 + n]
            obs0.append(obs[t0])
            acts.append(a)
            truth.append(s)
            mask.append(np.arange(horizon) < n)
    if not obs0:
        raise ValueError("no episode has a step to predict")
    return tuple(torch.as_tensor(np.asarray(x), dtype=torch.float32)
                 for x in (obs0, acts, truth, mask))


def _student_rollout(student: StudentWorldModel, s0: torch.Tensor, acts: torch.Tensor
                     ) -> torch.Tensor:
    """(S, horizon, obs) with the student's predictions at k = H, 2H, .. (NaN elsewhere)."""
    h = student.cfg.horizon
    out = torch.full((*acts.shape[:2], s0.shape[1]), torch.nan)
    s = s0
    with torch.no_grad():
        for j in range(acts.shape[1] // h):
            s, _ = student(s, acts[:, j * h:(j + 1) * h])
            out[:, (j + 1) * h - 1] = s
    return out


def kstep_errors(model: EnsembleWorldModel | StudentWorldModel, episodes: list[Any],
                 horizon: int = 50, stride: int = 10) -> dict[str, list[float]]:
    """``{"k": [1..H], "model": [e_k], "no_change": [e_k], "starts": [n_k]}``."""
    s0, acts, truth, mask = _starts(episodes, horizon, stride)
    if isinstance(model, StudentWorldModel):
        pred = _student_rollout(model, s0, acts)
    else:
        pred = model.rollout(s0, acts)["obs"]
    norm = model.obs_norm
    true_n = norm(truth)
    flags = torch.all((truth == 0) | (truth == 1), dim=(0, 1))  # dims only ever 0 or 1

    def err(p: torch.Tensor, dims: torch.Tensor) -> list[float]:
        per = ((p - true_n)[..., dims] ** 2).mean(-1)  # (starts, H)
        e = ((per * mask).sum(0) / mask.sum(0).clamp_min(1)).sqrt()
        return torch.where(mask.sum(0) > 0, e, torch.nan).tolist()

    still = norm(s0)[:, None, :].expand_as(true_n)
    every, cont = torch.ones_like(flags), ~flags
    return {"k": list(range(1, horizon + 1)), "model": err(norm(pred), every),
            "no_change": err(still, every), "model_continuous": err(norm(pred), cont),
            "no_change_continuous": err(still, cont), "starts": mask.sum(0).int().tolist()}
