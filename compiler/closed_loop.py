"""Closed-loop check of a compiled network on the ground: the folded float network and its
fixed-point core fly the task through the trainer's evaluation loop (``policies.evaluate``),
same seeds, so their success rates can be compared side by side.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compiler.calibrate import expert_states, record_denoising
from compiler.export import export_policy
from compiler.fold import fold
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from policies.checkpoint import load_policy
from policies.config import PolicyConfig
from policies.evaluate import EvalResult, evaluate
from runtime.fixed_point import FixedCore
from runtime.network import FoldedNet
from runtime.sampler import Sampler, unnormalise


class CompiledPolicy:
    """Acts like a ``DiffusionPolicy`` for ``policies.evaluate`` with numpy networks:
    the float network (spiking or the ANN twin), or (with ``core``) the Loihi 2
    fixed-point core."""

    spiking = None  # firing rates are not recorded through this adapter

    def __init__(self, cfg: PolicyConfig, net: FoldedNet, sampler: Sampler, act_lo: np.ndarray,
                 act_hi: np.ndarray, core: FixedCore | None = None) -> None:
        self.cfg, self.net, self.sampler, self.core = cfg, net, sampler, core
        self.act_lo, self.act_hi = act_lo, act_hi

    def eval(self) -> CompiledPolicy:
        return self

    def _eps(self, obs: np.ndarray):
        state, bias = self.net.state_current(obs), self.net.output_bias(obs)  # once per chunk

        def run(x: np.ndarray, k: np.ndarray) -> np.ndarray:
            current = self.net.first_layer_current(x, k, obs, state)
            if self.core is None:
                return self.net.eps_from_current(current, bias)
            last = self.core.run(self.core.quantize_input(current))[-1]
            return self.net.readout(last.sum(0).astype(np.float64), bias)
        return run

    def act(self, obs: np.ndarray, generator: torch.Generator | None = None,
            ddim_steps: int | None = None) -> np.ndarray:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        obs = np.atleast_2d(np.asarray(obs, np.float64))
        x = self.sampler.sample(self._eps(obs), len(obs), self.net.action_size,
                                np.random.default_rng(seed), ddim_steps)
        return self.cfg.frame.to_world(obs, unnormalise(x, self.act_lo, self.act_hi,
                                                        self.cfg.chunk))


GROUND_SEED0 = 10_000  # the held-out seeds every ground run flies from

def ground_success(policy_cfg: PolicyConfig, task: str, net: FoldedNet, sampler: Sampler,
                   act_lo: np.ndarray, act_hi: np.ndarray, core: FixedCore | None,
                   ddim_steps: int | None, episodes: int, seed0: int = GROUND_SEED0,
                   execute: int | None = None) -> EvalResult:
    """Closed-loop result of one operating point of a compiled network."""
    adapter = CompiledPolicy(policy_cfg, net, sampler, act_lo, act_hi, core)
    return evaluate(adapter, task, episodes, seed0=seed0,  # type: ignore[arg-type]
                    ddim_steps=ddim_steps, execute=execute)


def compare_success(checkpoint: Path, episodes: int, groups: int = 8,
                    seed0: int = GROUND_SEED0) -> dict[str, EvalResult]:
    """Closed-loop results of the float and the fixed-point network of ``checkpoint``."""
    policy, saved = load_policy(checkpoint)
    exported = export_policy(policy)
    net = sort_by_weight_scale(fold(exported))
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"],
                      exported.meta["prediction"])
    calib = record_denoising(net, sampler, expert_states(saved["task"], 4))
    quant = quantize_net(net, net.first_layer_current(calib.x, calib.k, calib.obs), LOIHI2,
                         groups=groups)
    lo, hi = exported.host["act_lo"], exported.host["act_hi"]
    return {name: ground_success(policy.cfg, saved["task"], net, sampler, lo, hi, core, None,
                                 episodes, seed0)
            for name, core in (("float", None), ("fixed", quant.core))}


def _send_result(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001  (reported by the parent, one line)
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class Background:
    """``fn(*args)`` in a forked worker process while the caller goes on (the compile's
    ground episodes beside its Lava checks: each is single-threaded, so two cores run
    both at once); inline when the machine has one core. ``result()`` waits for the
    value; ``close()`` stops a worker whose result is no longer wanted. Use as a context
    manager so that a failed compile leaves no process behind."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: tuple[str, Any] | None = None
        self._proc: Any = None
        if (os.cpu_count() or 1) < 2:
            self._value = ("ok", fn(*args))
            return
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_send_result, args=(child, fn, args), daemon=True)
        self._proc.start()
        child.close()

    def result(self) -> Any:
        if self._value is None:
            try:
                self._value = self._conn.recv()
            except EOFError:
                self._value = ("error", f"worker died (exit code {self._proc.exitcode})")
            self._proc.join()
        status, value = self._value
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
