"""Training the teacher world model (``policies.world_model``): AdamW on the ensemble
loss, each member its own bootstrap batch, resumable checkpoints.

A run directory holds ``config.json`` (format ``spikeflight-world-model/1``, task, model
and training configs, iteration), ``world_model.safetensors`` (the weights, normalisers
included) and the resumable training state (``policies.checkpoint.save_state``). One
seeded ``torch.Generator`` draws every batch and its state is checkpointed, so a resumed
run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from policies.checkpoint import load_module, load_train_state, save_state, saved_run
from policies.world_model import EnsembleWorldModel, Transitions, WorldModelConfig

FORMAT = "spikeflight-world-model/1"
WEIGHTS = "world_model.safetensors"


@dataclass
class WorldModelTrainConfig:
    iterations: int = 5000
    batch_size: int = 256  # per member
    lr: float = 1e-3
    weight_decay: float = 1e-5
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 2


def _config(model: EnsembleWorldModel, task: str, train: dict[str, Any],
            iteration: int) -> dict[str, Any]:
    return {"format": FORMAT, "task": task, "iteration": iteration,
            "model": model.cfg.to_dict(), "train": train}


def load_world_model(path: str | Path) -> tuple[EnsembleWorldModel, dict[str, Any]]:
    """The trained model of a run directory (eval mode) and its config."""
    return load_module(path, FORMAT, WEIGHTS, lambda cfg: EnsembleWorldModel(
        WorldModelConfig.from_dict(cfg["model"])))


@dataclass
class Run:
    """A training run opened by ``open_run``: model, optimiser, generator, the iteration
    it starts at and the losses so far."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    start: int
    losses: list[float]

    def update(self, loss: torch.Tensor, it: int, train_cfg: Any,
               save: Callable[[int], None],
               on_step: Callable[[int, float], None] | None) -> None:
        """One optimiser step on ``loss`` at iteration ``it``; ``save(done)`` every
        ``train_cfg.checkpoint_every`` iterations and at the last; then ``on_step``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.losses.append(float(loss.detach()))
        done = it + 1
        if done % train_cfg.checkpoint_every == 0 or done == train_cfg.iterations:
            save(done)
        if on_step is not None:
            on_step(done, self.losses[-1])


def open_run(run_dir: Path, fmt: str, task: str, cfg: Any, train_cfg: Any,
             build: Callable[[Any], torch.nn.Module],
             init: Callable[[torch.nn.Module], None]) -> Run:
    """A new run of ``build(cfg)`` (``init`` fits its normalisers), or the one of format
    ``fmt`` in ``run_dir`` resumed with its saved config and state; AdamW at
    ``train_cfg.lr`` / ``weight_decay``, a generator seeded by ``train_cfg.seed``."""
    torch.set_num_threads(train_cfg.threads)
    saved = saved_run(run_dir, fmt, task)
    if saved is not None:
        cfg = type(cfg).from_dict(saved["model"])
    torch.manual_seed(train_cfg.seed)
    model = build(cfg)
    init(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr,
                                  weight_decay=train_cfg.weight_decay)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    start, losses = 0, []
    if saved is not None:
        start, losses = load_train_state(run_dir, model, optimizer, gen)
    return Run(model, optimizer, gen, start, losses)


def train_world_model(task: str, data: Transitions, model_cfg: WorldModelConfig,
                      train_cfg: WorldModelTrainConfig, run_dir: Path,
                      on_step: Callable[[int, float], None] | None = None
                      ) -> tuple[EnsembleWorldModel, list[float]]:
    """Train (or resume in ``run_dir``) and checkpoint there; the model and the losses."""
    run = open_run(Path(run_dir), FORMAT, task, model_cfg, train_cfg,
                   lambda cfg: EnsembleWorldModel(cfg), lambda m: m.fit_normalizers(data))
    model, optimizer, gen = run.model, run.optimizer, run.gen
    model_cfg = model.cfg
    tensors = (data.obs, data.act, data.next_obs, data.reward, data.done, data.valid)
    shape = (model_cfg.members, train_cfg.batch_size)
    train = asdict(train_cfg)
    model.train()
    for it in range(run.start, train_cfg.iterations):
        idx = torch.randint(len(data), shape, generator=gen)
        run.update(model.loss(tuple(t[idx] for t in tensors)), it, train_cfg,
                   lambda done: save_state(run_dir, WEIGHTS, model, model, optimizer, gen,
                                           _config(model, task, train, done), done,
                                           run.losses), on_step)
    return model.eval(), run.losses
