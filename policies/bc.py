"""Behaviour cloning of a diffusion policy: epsilon-MSE, AdamW, EMA, resumable.

One iteration draws ``batch_size`` (obs, action chunk) pairs from the windows of the
successful demonstrations (uniformly, or phase-balanced: ``BcData.sample_weights``), a
denoising step k ~ U{0..K-1} and eps ~ N(0, I) per pair, and takes an AdamW step at the
scheduled learning rate (``learning_rate``) on ``|| eps_hat(x_k, k, s) - eps ||^2`` (plus,
for spiking policies, ``rate_reg`` times the mean firing rate: activity regularisation
for energy). After each step the spiking thresholds are projected above
``THRESHOLD_FLOOR``, the SDLI strength follows its ramp, and the EMA copy is updated with
decay ``min(ema_decay, (1 + i) / (10 + i))``.

Everything random draws from one seeded ``torch.Generator`` whose state is checkpointed,
and torch runs a fixed number of threads: a run is deterministic given its seed and
thread count, and a resumed run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from hardware.errors import SpikeflightError
from policies.checkpoint import (
    CONFIG,
    TRAIN_STATE,
    CheckpointError,
    load_train_state,
    load_weights,
    read_config,
    save_run,
)
from policies.config import PolicyConfig
from policies.data import BcData
from policies.dist import Comm
from policies.normalize import MinMax
from policies.policy import DiffusionPolicy


@dataclass
class TrainConfig:
    """Optimisation settings (the L-SDPPO paper: AdamW 1e-4, wd 1e-6, batch 256, EMA
    0.995 over 3000 epochs; we train for fewer, larger steps by default)."""

    iterations: int = 20000
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.995
    checkpoint_every: int = 1000
    seed: int = 0
    threads: int = 2
    rate_reg: float = 0.3
    lr_schedule: str = "constant"  # constant | cosine
    warmup: int = 500
    phase_balance: float = 0.0  # 0: uniform windows; 1: every expert phase equally often


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(cfg: TrainConfig, it: int) -> float:
    """Learning rate of iteration ``it`` (0-based): ``lr`` throughout for ``constant``;
    for ``cosine`` (Diffusion Policy's schedule) a linear warm-up over ``warmup``
    iterations, then ``lr * (1 + cos(pi * it / iterations)) / 2``, which reaches 0 at the
    last iteration. A function of the iteration alone, so a resumed run follows it too."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                         f"got {cfg.lr_schedule!r}")
    warm = min(1.0, (it + 1) / max(cfg.warmup, 1))
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * it / cfg.iterations))


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    resumed_from: int
    losses: list[float]


StepCallback = Callable[[int, float], None]


def _ema_pairs(ema: DiffusionPolicy, model: DiffusionPolicy) -> list[tuple[torch.Tensor, ...]]:
    """(EMA tensor, model tensor, is_parameter) for every parameter and persistent buffer;
    snnTorch's per-batch membrane buffers are not persistent and are left out."""
    pairs = [(pe, pm, True) for pe, pm in zip(ema.parameters(), model.parameters(),
                                               strict=True)]
    persistent = ema.state_dict().keys()
    pairs += [(be, bm, False) for (name, be), (_, bm)
              in zip(ema.named_buffers(), model.named_buffers(), strict=True)
              if name in persistent]
    return pairs


def _ema_update(pairs: list[tuple[torch.Tensor, ...]], decay: float) -> None:
    """Parameters: e <- decay e + (1 - decay) m; buffers (normalisers, SDLI beta): copied."""
    with torch.no_grad():
        for e, m, is_param in pairs:
            if is_param:
                e.mul_(decay).add_(m, alpha=1.0 - decay)
            else:
                e.copy_(m)


def resumable_config(run_dir: Path, task: str, kind: str) -> PolicyConfig | None:
    """The saved policy config if ``run_dir`` holds a run to resume (None if it holds
    none); raises if that run is of another policy kind or task."""
    if not (Path(run_dir) / CONFIG).exists():
        return None
    _, saved = read_config(run_dir)
    if saved["policy"]["kind"] != kind:
        raise CheckpointError(f"{run_dir} holds a {saved['policy']['kind']!r} checkpoint; "
                              f"cannot resume it as {kind!r} (use another -o)")
    if saved["task"] != task:
        raise CheckpointError(f"{run_dir} holds a checkpoint for task {saved['task']!r}, "
                              f"not {task!r}")
    return PolicyConfig.from_dict(saved["policy"])


class TrainingError(SpikeflightError):
    """Training cannot go on (a non-finite loss or weights); nothing more is written."""


def _kept(run_dir: Path, start: int) -> str:
    """What is left on disk after a divergence, for the error message."""
    try:
        it = json.loads((Path(run_dir) / TRAIN_STATE).read_text())["iteration"]
        return f"the checkpoint of iteration {it} in {run_dir} is kept"
    except (OSError, ValueError, KeyError):
        return "no checkpoint was written" if not start else f"{run_dir} is unchanged"


def train_bc(task: str, data: BcData, policy_cfg: PolicyConfig, train_cfg: TrainConfig,
             run_dir: Path, on_step: StepCallback | None = None,
             init: Path | None = None, comm: Comm | None = None) -> TrainResult:
    """Train (or resume training in ``run_dir``) and checkpoint there.

    ``init``: a checkpoint to start from instead of random weights (its config, weights
    and normalisers are taken; the SDLI strength stays at its maximum, no ramp), as the
    DAgger rounds do; ignored when ``run_dir`` holds a run to resume.

    ``comm`` over several ranks (``torchrun``): each rank draws ``batch_size / world``
    pairs from its own generator (seeded by the seed, the rank and the iteration it
    started or resumed at), gradients are averaged over ranks after each backward pass,
    and rank 0 writes the checkpoints. One rank is exactly the single-process run."""
    comm = comm or Comm()
    torch.set_num_threads(train_cfg.threads)
    run_dir = Path(run_dir)
    saved_cfg = resumable_config(run_dir, task, policy_cfg.kind)
    resuming = saved_cfg is not None
    start_weights = None
    if not resuming and init is not None:
        init_dir, init_cfg = read_config(init)
        policy_cfg = replace(PolicyConfig.from_dict(init_cfg["policy"]), sdli_ramp_iters=0)
        start_weights = load_weights(init_dir)
    policy_cfg = saved_cfg or policy_cfg
    data = data.in_frame(policy_cfg.frame)
    torch.manual_seed(train_cfg.seed)
    model = DiffusionPolicy(policy_cfg)
    if start_weights is not None:
        model.load_state_dict(start_weights)
    else:
        model.obs_norm.load_state_dict(MinMax.fit_robust(data.obs).state_dict())
        model.act_norm.load_state_dict(MinMax.fit(data.actions).state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr,
                                  weight_decay=train_cfg.weight_decay)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    start, losses = 0, []
    ema = copy.deepcopy(model)
    if resuming:
        start, losses = load_train_state(run_dir, model, optimizer, gen)
        ema.load_state_dict(load_weights(run_dir))
    batch = train_cfg.batch_size
    if comm.world > 1:  # each rank its own stream and its share of the batch
        gen.manual_seed(int(np.random.SeedSequence([train_cfg.seed, start, comm.rank])
                            .generate_state(1)[0]))
        batch = max(1, train_cfg.batch_size // comm.world)
    snn = model.spiking
    weights = data.sample_weights(train_cfg.phase_balance)
    ema_pairs = _ema_pairs(ema, model)
    train_dict = asdict(train_cfg)
    model.train()
    for it in range(start, train_cfg.iterations):
        if snn is not None and snn.sdli is not None:
            snn.sdli.set_ramp(it, policy_cfg.sdli_ramp_iters)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(train_cfg, it)
        idx = torch.randint(len(data), (batch,), generator=gen) if weights is None \
            else torch.multinomial(weights, batch, replacement=True, generator=gen)
        loss = model.loss(data.obs[idx], data.actions[idx], generator=gen)
        if not bool(torch.isfinite(loss)):
            raise TrainingError(f"training diverged at iteration {it + 1}: the loss is "
                                f"{float(loss.detach())} (try a lower --lr); "
                                f"{_kept(run_dir, start)}")
        objective = loss + train_cfg.rate_reg * snn.last_rate if snn is not None else loss
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        comm.mean_grads(model.parameters())
        optimizer.step()
        if snn is not None:
            snn.project_thresholds()
        _ema_update(ema_pairs, min(train_cfg.ema_decay, (1 + it) / (10 + it)))
        losses.append(float(loss.detach()))
        done = it + 1
        if (done % train_cfg.checkpoint_every == 0 or done == train_cfg.iterations) \
                and comm.main:
            if not all(bool(torch.isfinite(p).all()) for p in ema.parameters()):
                raise TrainingError(f"training diverged by iteration {done}: weights are not "
                                    f"finite (try a lower --lr); {_kept(run_dir, start)}")
            save_run(run_dir, ema, model, optimizer, gen, task, train_dict, done, losses)
        if on_step is not None:
            on_step(done, losses[-1])
    return TrainResult(run_dir=run_dir, iteration=train_cfg.iterations, resumed_from=start,
                       losses=losses)
