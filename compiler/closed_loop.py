"""Closed-loop check of a compiled network on the ground: the folded float network and its
fixed-point core fly the task through the trainer's evaluation loop (``policies.evaluate``),
same seeds, so their success rates can be compared side by side.
"""

from __future__ import annotations

from pathlib import Path

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
    the float network, or (with ``core``) the Loihi 2 fixed-point core."""

    spiking = None  # firing rates are not recorded through this adapter

    def __init__(self, cfg: PolicyConfig, net: FoldedNet, sampler: Sampler, act_lo: np.ndarray,
                 act_hi: np.ndarray, core: FixedCore | None = None) -> None:
        self.cfg, self.net, self.sampler, self.core = cfg, net, sampler, core
        self.act_lo, self.act_hi = act_lo, act_hi

    def eval(self) -> CompiledPolicy:
        return self

    def _eps(self, obs: np.ndarray):
        def run(x: np.ndarray, k: np.ndarray) -> np.ndarray:
            current = self.net.first_layer_current(x, k, obs)
            if self.core is None:
                return self.net.readout(self.net.spike_counts(current)[-1])
            last = self.core.run(self.core.quantize_input(current))[-1]
            return self.net.readout(last.sum(0).astype(np.float64))
        return run

    def act(self, obs: np.ndarray, generator: torch.Generator | None = None,
            ddim_steps: int | None = None) -> np.ndarray:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        obs = np.atleast_2d(np.asarray(obs, np.float64))
        x = self.sampler.sample(self._eps(obs), len(obs), self.net.action_size,
                                np.random.default_rng(seed), ddim_steps)
        return unnormalise(x, self.act_lo, self.act_hi, self.cfg.chunk)


def ground_success(policy_cfg: PolicyConfig, task: str, net: FoldedNet, sampler: Sampler,
                   act_lo: np.ndarray, act_hi: np.ndarray, core: FixedCore | None,
                   ddim_steps: int | None, episodes: int, seed0: int = 10_000,
                   execute: int | None = None) -> EvalResult:
    """Closed-loop result of one operating point of a compiled network."""
    adapter = CompiledPolicy(policy_cfg, net, sampler, act_lo, act_hi, core)
    return evaluate(adapter, task, episodes, seed0=seed0,  # type: ignore[arg-type]
                    ddim_steps=ddim_steps, execute=execute)


def compare_success(checkpoint: Path, episodes: int, groups: int = 8,
                    seed0: int = 10_000) -> dict[str, EvalResult]:
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
