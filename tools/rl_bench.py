"""Rollout-and-update throughput of L-SDPPO fine-tuning, side by side in one run:
environment steps per second of the vectorized rollout with batched spiking inference
(plus its PPO update), with the envs stepped in-process (1 worker), one process per env
(async), and split over 2 data-parallel ranks under torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from policies.rl import RlConfig, train_rl


def _rate(history: list[dict[str, Any]]) -> float:
    steps = sum(h["env_steps"] for h in history[1:])  # the first iteration warms up
    return steps / max(sum(h["seconds"] for h in history[1:]), 1e-9)


def rl_throughput(init: Path, task: str, envs: int, iterations: int = 3) -> dict[str, float]:
    """Env steps per second for each way of running (median-free: the iterations after the
    first, summed)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, asynchronous in (("1 worker", False), (f"{envs} processes", True)):
            cfg = RlConfig(iterations=iterations, envs=envs, asynchronous=asynchronous,
                           eval_every=0, init=str(init))
            out[name] = _rate(train_rl(task, cfg, Path(tmp) / name))
        run = Path(tmp) / "ddp"
        cmd = [str(Path(sys.executable).parent / "spikeflight"), "train", "rl", "--init",
               str(init), "--task", task, "-o", str(run), "--iterations", str(iterations),
               "--envs", str(envs), "--sync", "--eval-every", "0", "--nproc", "2"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
        out["2 ranks (DDP)"] = _rate(json.loads((run / "rl_history.json").read_text()))
    return out
