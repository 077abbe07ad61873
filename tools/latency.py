"""Per-chunk inference latency of the default policy: the runtime's ONNX chunk graphs
against the same network in snnTorch eager, one thread, same process, same run.

Each measurement plans one chunk for one observation (K = 20 DDPM steps): snnTorch runs
``DiffusionPolicy.act`` (its denoiser evaluated 20 times, T = 4 micro-steps each); the
runtime runs one ``chunk.onnx`` call (float64) or one ``chunk_fixed.onnx`` call (Loihi 2
fixed point). The ANN twin of the same layout (random weights: latency does not depend on
them) runs as ONNX for reference. Observations are expert states of the default task.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from compiler.calibrate import expert_states
from compiler.export import export_policy
from compiler.fold import fold
from compiler.onnx_chunk import build_chunk
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from policies.checkpoint import load_policy
from policies.config import PolicyConfig
from policies.policy import DiffusionPolicy
from runtime.sampler import Sampler


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99))}


def _time(fn, items: list, warmup: int = 5) -> list[float]:
    for item in items[:warmup]:
        fn(item)
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def chunk_latency(checkpoint: Path, chunks: int = 100) -> dict[str, dict[str, float]]:
    """Median and p99 per chunk (ms) of snnTorch eager, ONNX float, ONNX fixed point and
    the ANN twin in ONNX, over ``chunks`` observations."""
    import onnxruntime as ort

    torch.set_num_threads(1)
    policy, saved = load_policy(checkpoint)
    policy.eval()
    obs = expert_states(saved["task"], 2)
    obs = obs[np.linspace(0, len(obs) - 1, chunks).astype(int)]
    exported = export_policy(policy)
    net = sort_by_weight_scale(fold(exported))
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"])
    ks, coef = sampler.coefficients(None)
    calib = net.first_layer_current(np.zeros((1, net.action_size)), np.array([0]), obs)
    core = quantize_net(net, calib, LOIHI2).core
    ann_cfg = PolicyConfig(**{**policy.cfg.to_dict(), "kind": "ann"})
    ann_policy = DiffusionPolicy(ann_cfg).eval()
    ann_policy.obs_norm.load_state_dict(policy.obs_norm.state_dict())
    ann_policy.act_norm.load_state_dict(policy.act_norm.state_dict())
    ann_net = fold(export_policy(ann_policy))

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    rng = np.random.default_rng(0)

    def onnx_fn(model):
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])

        def run(o: np.ndarray) -> None:
            x, z = sampler.draw(rng, 1, net.action_size, len(ks))
            sess.run(None, {"obs": o[None], "x": x, "ks": ks, "coef": coef, "z": z})
        return run

    gen = torch.Generator().manual_seed(0)
    items = list(obs)
    return {
        "snntorch_eager": _stats(_time(lambda o: policy.act(o[None], generator=gen), items)),
        "onnx_float": _stats(_time(onnx_fn(build_chunk(net)), items)),
        "onnx_fixed": _stats(_time(onnx_fn(build_chunk(net, core)), items)),
        "ann_twin_onnx": _stats(_time(onnx_fn(build_chunk(ann_net)), items)),
    }
