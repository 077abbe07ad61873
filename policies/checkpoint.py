"""Policy checkpoints: safetensors weights + JSON config, written atomically.

A run directory holds::

    config.json              format, task, policy config, training config, schedule,
                             normalisers (lo/hi per dimension), iteration
    policy.safetensors       EMA weights: what evaluation and the compiler consume
    train_state.safetensors  raw weights (``model.*``), AdamW moments (``opt.*``), RNG state
    train_state.json         iteration, optimiser hyper-parameters, recent losses

Every file is written to a temporary name, fsynced and renamed, ``train_state.json`` last,
so an interrupted save leaves the previous checkpoint loadable. Every safetensors file
carries a SHA-256 of its tensors in its metadata (``spikeflight_sha256``; other
safetensors readers ignore it), checked on load, so a changed byte in a weight is an
error instead of a silently different network.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from hardware.files import read_input, regular_file
from policies.config import PolicyConfig
from policies.policy import DiffusionPolicy

FORMAT = "spikeflight-policy/1"
CONFIG, WEIGHTS = "config.json", "policy.safetensors"
DIGEST_KEY = "spikeflight_sha256"  # safetensors metadata: tensor_digest of the file
MAX_CONFIG_BYTES = 1 << 20  # a run's config.json is a few kB
TRAIN_WEIGHTS, TRAIN_STATE = "train_state.safetensors", "train_state.json"


PRETRAINED = Path(__file__).parent / "pretrained"


class CheckpointError(SpikeflightError):
    """A checkpoint that is missing, unreadable, or of another kind than expected."""


def shipped(task: str) -> Path:
    """The shipped SDP+SDLI checkpoint of cabin task ``task`` (``policies/pretrained/``)."""
    path = PRETRAINED / f"{task}-sdp-sdli"
    if not (path / CONFIG).exists():
        have = sorted(p.name.removesuffix("-sdp-sdli") for p in PRETRAINED.glob("*-sdp-sdli"))
        raise CheckpointError(f"no shipped checkpoint for task {task!r}; shipped: "
                              f"{', '.join(have)}")
    return path


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    with AtomicFile(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file whose metadata carries ``tensor_digest`` (``DIGEST_KEY``), so
    that a flipped byte in a weight is caught on load."""
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with AtomicFile(path) as tmp:
        save_file(tensors, tmp, metadata={DIGEST_KEY: tensor_digest(tensors)})


def policy_config_dict(policy: DiffusionPolicy, task: str, train: dict[str, Any],
                       iteration: int) -> dict[str, Any]:
    s = policy.schedule
    return {
        "format": FORMAT,
        "task": task,
        "iteration": iteration,
        "policy": policy.cfg.to_dict(),
        "train": train,
        "schedule": {"kind": "cosine", "steps": s.steps, "s": policy.cfg.cosine_s,
                     "betas": s.betas.tolist(), "alpha_bars": s.alpha_bars.tolist()},
        "normalizers": {"obs": {"lo": policy.obs_norm.lo.tolist(),
                                "hi": policy.obs_norm.hi.tolist()},
                        "action": {"lo": policy.act_norm.lo.tolist(),
                                   "hi": policy.act_norm.hi.tolist()}},
    }


def save_state(run_dir: Path, weights_name: str, published: torch.nn.Module,
               model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               generator: torch.Generator, config: dict[str, Any], iteration: int,
               losses: list[float]) -> None:
    """Write a complete, resumable checkpoint of any training run: ``published``'s
    weights as ``weights_name`` (what consumers load), the raw ``model``, optimiser and
    RNG state, and ``config`` as ``config.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    opt = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for idx, st in opt["state"].items():
        for name, val in st.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(val)
    tensors["rng"] = generator.get_state()
    _write_tensors(run_dir / weights_name, dict(published.state_dict()))
    _write_tensors(run_dir / TRAIN_WEIGHTS, tensors)
    _write_json(run_dir / CONFIG, config)
    _write_json(run_dir / TRAIN_STATE, {"iteration": iteration,
                                        "param_groups": opt["param_groups"],
                                        "losses": losses[-200:]})


def save_run(run_dir: Path, ema: DiffusionPolicy, model: DiffusionPolicy,
             optimizer: torch.optim.Optimizer, generator: torch.Generator, task: str,
             train: dict[str, Any], iteration: int, losses: list[float]) -> None:
    """Write a complete, resumable checkpoint of a policy's training run."""
    save_state(run_dir, WEIGHTS, ema, model, optimizer, generator,
               policy_config_dict(ema, task, train, iteration), iteration, losses)


def read_config(path: str | Path, fmt: str = FORMAT) -> tuple[Path, dict[str, Any]]:
    """(run directory, config) for a run directory or its weights file; the config
    must declare the format ``fmt``."""
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    cfg_path = run_dir / CONFIG
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not cfg_path.exists():
        raise CheckpointError(f"{path}: not a spikeflight checkpoint (no {CONFIG} beside it)")
    try:
        cfg = json.loads(read_input(cfg_path, "checkpoint config", MAX_CONFIG_BYTES)
                         .decode("utf-8"))
    except OSError as exc:
        raise CheckpointError(str(exc)) from None
    except ValueError as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path}: not a JSON object")
    if cfg.get("format") != fmt:
        raise CheckpointError(f"{cfg_path}: format {cfg.get('format')!r}, expected {fmt!r}")
    return run_dir, cfg


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against the digest in its metadata
    where it has one (files written before the digest existed have none)."""
    try:
        regular_file(path, "weights file")
        with safe_open(path, "pt") as fh:
            stored = (fh.metadata() or {}).get(DIGEST_KEY)
        tensors = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    if stored is not None and stored != tensor_digest(tensors):
        raise CheckpointError(f"{path}: weights do not match their checksum (a changed "
                              "byte: the file is corrupt)")
    return tensors


def load_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The EMA weights of a run directory, as a state dict."""
    return load_tensors(Path(run_dir) / WEIGHTS)


def load_policy(path: str | Path) -> tuple[DiffusionPolicy, dict[str, Any]]:
    """The EMA policy of a checkpoint (eval mode) and its config."""
    run_dir, cfg = read_config(path)
    if not isinstance(cfg.get("task"), str):
        raise CheckpointError(f"{run_dir / CONFIG}: task: missing or not a task name")
    policy = DiffusionPolicy(PolicyConfig.from_dict(cfg.get("policy")))
    weights = load_weights(run_dir)
    try:
        policy.load_state_dict(weights)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).strip().splitlines()[1:] if line.strip()]
        raise CheckpointError(f"{run_dir / WEIGHTS}: weights do not fit the "
                              f"{cfg['policy']['kind']} config ({'; '.join(details)})"
                              ) from exc
    return policy.eval(), cfg


def load_train_state(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator) -> tuple[int, list[float]]:
    """Restore raw weights, optimiser and RNG of a run; returns (iteration, losses)."""
    tensors = load_tensors(run_dir / TRAIN_WEIGHTS)
    state = json.loads((run_dir / TRAIN_STATE).read_text(encoding="utf-8"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    generator.set_state(tensors["rng"])
    return int(state["iteration"]), list(state["losses"])


def saved_run(run_dir: Path, fmt: str, task: str) -> dict[str, Any] | None:
    """The config of the run of format ``fmt`` in ``run_dir`` to resume (None if it holds
    none); raises if that run is of another task."""
    if not (Path(run_dir) / CONFIG).exists():
        return None
    _, saved = read_config(run_dir, fmt)
    if saved["task"] != task:
        raise CheckpointError(f"{run_dir} holds a run of task {saved['task']!r}, not {task!r}")
    return saved


def load_module(path: str | Path, fmt: str, weights: str,
                build: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``build(config)``'s module with the weights ``weights`` of the run of format ``fmt``
    at ``path`` (eval mode), and the config."""
    run_dir, cfg = read_config(path, fmt)
    module = build(cfg)
    try:
        module.load_state_dict(load_tensors(run_dir / weights))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{run_dir / weights}: weights do not fit the config "
                              f"({first})") from exc
    return module.eval(), cfg

