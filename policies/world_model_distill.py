"""Distilling the student world model from the teacher (``spikeflight train distill``).

Windows: every step ``t`` of every episode with the next ``H`` executed actions (the last
one repeated past the episode's end); the real target ``s_t+H`` where the episode has
``H`` more recorded steps, and the real success label (the episode ended in success
within the window).

One iteration draws ``B`` windows; half of them (``perturb``) get their actions moved by
Gaussian noise of ``sigma`` (normalised action units, clipped to the demonstrated range),
so the student also learns how the world answers actions other than the demonstrated
ones, which is what screening candidate chunks asks of it. The teacher rolls every window
out open loop (``EnsembleWorldModel.rollout``): its ``s_hat_t+H`` and its success
probability ``1 - prod_h (1 - p_h)`` are the soft targets. The loss is

    L = mean((mu - N_d(s_teacher - s_t))^2) + BCE(d_logit, p_teacher)
        + real_weight * [mean((mu - N_d(s_real - s_t))^2) + BCE(d_logit, d_real)]

with the real terms over the unperturbed windows that have a real target. AdamW,
one seeded generator, resumable checkpoints (format ``spikeflight-wm-student/1``,
weights ``student.safetensors``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from hardware.sim.dataset import read_episodes
from policies.checkpoint import load_module, save_state
from policies.world_model import EnsembleWorldModel, TransitionError, checked_arrays
from policies.world_model_student import StudentConfig, StudentWorldModel
from policies.world_model_train import open_run

FORMAT = "spikeflight-wm-student/1"
WEIGHTS = "student.safetensors"


@dataclass
class Windows:
    obs: torch.Tensor  # (N, obs_dim)
    actions: torch.Tensor  # (N, H, act_dim)
    target: torch.Tensor  # (N, obs_dim): s_t+H, a copy of obs where not real
    real: torch.Tensor  # (N,) 1 where the target was recorded
    done: torch.Tensor  # (N,) 1 where the episode succeeded within the window

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def load_windows(paths: list[str], obs_dim: int, act_dim: int, horizon: int,
                 task: str | None = None, obs_keys: list[str] | None = None) -> Windows:
    """H-step windows of every episode in ``paths`` (module docstring), observation
    fields in ``task``'s order (``read_episodes``)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("o", "a", "t", "r", "d")}
    for path in paths:
        for ep in read_episodes(path, task, obs_keys):
            obs, act = checked_arrays(path, ep, obs_dim, act_dim)
            n = ep.length
            pad = np.concatenate([act, np.repeat(act[-1:], horizon - 1, axis=0)])
            idx = np.arange(n)[:, None] + np.arange(horizon)[None, :]
            real = np.arange(n) + horizon <= n - 1
            ends = np.flatnonzero(np.asarray(ep.dones) > 0)
            done = np.zeros(n)
            for e in ends:
                done[max(0, e - horizon + 1):e + 1] = 1.0
            parts["o"].append(obs)
            parts["a"].append(pad[idx])
            parts["t"].append(np.where(real[:, None], obs[np.minimum(np.arange(n) + horizon,
                                                                    n - 1)], obs))
            parts["r"].append(real.astype(np.float64))
            parts["d"].append(done)
    if not parts["o"]:
        raise TransitionError(f"no episodes in {', '.join(paths)}")

    def cat(k: str) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(parts[k]), dtype=torch.float32)

    return Windows(cat("o"), cat("a"), cat("t"), cat("r"), cat("d"))


@dataclass
class DistillConfig:
    iterations: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    perturb: float = 0.5  # share of windows with perturbed actions
    sigma: float = 0.3  # their noise, normalised action units
    real_weight: float = 1.0
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 2


def load_student(path: str | Path) -> tuple[StudentWorldModel, dict[str, Any]]:
    """The distilled student of a run directory (eval mode) and its config."""
    return load_module(path, FORMAT, WEIGHTS, lambda cfg: StudentWorldModel(
        StudentConfig.from_dict(cfg["model"])))


def _init_student(student: StudentWorldModel, teacher: EnsembleWorldModel,
                  data: Windows) -> None:
    student.obs_norm.load_state_dict(teacher.obs_norm.state_dict())
    student.act_norm.load_state_dict(teacher.act_norm.state_dict())
    delta = (data.target - data.obs)[data.real > 0].double()
    if delta.shape[0] < 2:
        raise TransitionError(f"too few windows with {student.cfg.horizon} recorded steps "
                              "ahead to distil from")
    mean, std = delta.mean(0), delta.std(0)
    student.delta_norm.lo.copy_(mean - std)
    student.delta_norm.hi.copy_(mean + std)


def distill(task: str, teacher: EnsembleWorldModel, teacher_run: str, data: Windows,
            cfg: StudentConfig, dcfg: DistillConfig, run_dir: Path,
            on_step: Callable[[int, float], None] | None = None
            ) -> tuple[StudentWorldModel, list[float]]:
    """Distil (or resume in ``run_dir``) and checkpoint there; the student and losses."""
    run_dir = Path(run_dir)
    run = open_run(run_dir, FORMAT, task, cfg, dcfg, lambda c: StudentWorldModel(c),
                   lambda m: _init_student(m, teacher, data))
    student, gen = run.model, run.gen
    cfg = student.cfg
    lo, hi = teacher.act_norm.lo, teacher.act_norm.hi
    half = (hi - lo) / 2
    meta = {"format": FORMAT, "task": task, "teacher": teacher_run, "model": cfg.to_dict(),
            "train": asdict(dcfg)}
    student.train()
    for it in range(run.start, dcfg.iterations):
        idx = torch.randint(len(data), (dcfg.batch_size,), generator=gen)
        obs, act = data.obs[idx], data.actions[idx]
        moved = torch.rand(dcfg.batch_size, generator=gen) < dcfg.perturb
        noise = torch.randn(act.shape, generator=gen) * dcfg.sigma * half
        act = torch.where(moved[:, None, None], torch.clamp(act + noise, lo, hi), act)
        roll = teacher.rollout(obs, act)
        t_obs = roll["obs"][:, -1]
        t_done = 1 - torch.prod(1 - roll["success"], dim=1)
        mu, d_logit = student.heads(obs, act)
        loss = ((mu - student.delta_norm(t_obs - obs)) ** 2).mean() + \
            F.binary_cross_entropy_with_logits(d_logit, t_done)
        keep = (data.real[idx] > 0) & ~moved
        if keep.any() and dcfg.real_weight > 0:
            real = ((mu[keep] - student.delta_norm(data.target[idx][keep] - obs[keep])) ** 2
                    ).mean() + F.binary_cross_entropy_with_logits(d_logit[keep],
                                                                  data.done[idx][keep])
            loss = loss + dcfg.real_weight * real
        run.update(loss, it, dcfg, lambda done: save_state(
            run_dir, WEIGHTS, student, student, run.optimizer, gen, {**meta, "iteration": done},
            done, run.losses), on_step)
    return student.eval(), run.losses
