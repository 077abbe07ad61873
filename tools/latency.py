"""Per-chunk inference latency of the default policy: the runtime's ONNX chunk graphs
against the same network in snnTorch eager, one thread, same process, same run.

Each measurement plans one chunk for one observation (K = 20 DDPM steps): snnTorch runs
``DiffusionPolicy.act`` (its denoiser evaluated 20 times, T = 4 micro-steps each); the
runtime runs one ``chunk.onnx`` call (float64) or one ``chunk_fixed.onnx`` call (Loihi 2
fixed point). The ANN twin of the same layout (random weights: latency does not depend on
them) runs as ONNX for reference. Observations are expert states of the default task.

The bound to measure against (``matvec_chunk``): the chunk's matrix-vector products
alone, in numpy float64 on one BLAS thread, with the network's shapes (per denoising step
the input layer ``W_in x``, per micro-step every hidden weight times a spike vector, and
the readout). It and the backends take turns of 10 observations each (see
``_side_by_side``). Batched calls give the per-sample time of one chunk-graph call for B
observations at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from compiler.calibrate import expert_states
from compiler.export import export_policy
from compiler.fold import fold
from compiler.onnx_chunk import build_chunk
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from policies.checkpoint import load_policy
from policies.config import PolicyConfig
from policies.policy import DiffusionPolicy
from runtime.network import FoldedNet
from runtime.sampler import Sampler


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99))}


def _time(fn: Callable[[Any], Any], items: list, warmup: int = 5) -> list[float]:
    return _side_by_side({"fn": fn}, items, warmup)["fn"]


def _side_by_side(fns: dict[str, Callable[[Any], Any]], items: list,
                  warmup: int = 5, block: int = 10) -> dict[str, list[float]]:
    """Wall ms of every function on every item. The functions take turns, ``block`` items
    each, so that a change in the machine's load touches them all alike, while each runs
    a few calls in a row as the runtime does in flight (chunk after chunk): with turns of
    one item, every call would start from the caches the others left (snnTorch's 40 ms
    between two 1.5 ms ONNX calls evict their weights)."""
    for fn in fns.values():
        for item in items[:warmup]:
            fn(item)
    out: dict[str, list[float]] = {name: [] for name in fns}
    for first in range(0, len(items), block):
        for name, fn in fns.items():
            for item in items[first:first + block]:
                t0 = time.perf_counter()
                fn(item)
                out[name].append((time.perf_counter() - t0) * 1e3)
    return out


def matvec_chunk(net: FoldedNet, steps: int = 20) -> Callable[[Any], None]:
    """One chunk's matrix-vector products in numpy float64 (module docstring), with
    spike vectors at the rate 0.15; its argument is ignored. Time it on one BLAS thread."""
    rng = np.random.default_rng(0)
    w_in = net.w_in.astype(np.float64)
    hidden = [w.astype(np.float64) for w in net.hidden_w]
    w_out = net.readout_w.astype(np.float64)
    x = rng.standard_normal(net.action_size)
    spikes = [(rng.random(n) < 0.15).astype(np.float64) for n in net.widths]

    def chunk(_: Any) -> None:
        for _k in range(steps):
            w_in @ x
            for _t in range(net.micro_steps):
                for w, s in zip(hidden, spikes, strict=False):
                    w @ s
            w_out @ spikes[-1]
    return chunk


def _session(model: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _feeds(sampler: Sampler, ks: np.ndarray, coef: np.ndarray, size: int,
           rng: np.random.Generator) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def feed(obs: np.ndarray) -> dict[str, np.ndarray]:
        x, z = sampler.draw(rng, len(obs), size, len(ks))
        return {"obs": obs, "x": x, "ks": ks, "coef": coef, "z": z}
    return feed


def chunk_latency(checkpoint: Path, chunks: int = 100,
                  batches: tuple[int, ...] = ()) -> dict[str, dict[str, float]]:
    """Median and p99 per chunk (ms) of snnTorch eager, ONNX float, ONNX fixed point and
    the ANN twin in ONNX, over ``chunks`` observations, the numpy bound (``matvec``), and
    for every B in ``batches`` the per-sample median of a B-row call (``onnx_float_bB``,
    ``onnx_fixed_bB``)."""
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

    rng = np.random.default_rng(0)
    feed = _feeds(sampler, ks, coef, net.action_size, rng)

    def onnx_fn(model: Any, batched: bool = False) -> Callable[[np.ndarray], Any]:
        sess = _session(model)
        return lambda o: sess.run(None, feed(o if batched else o[None]))

    gen = torch.Generator().manual_seed(0)
    graphs = {"onnx_float": build_chunk(net), "onnx_fixed": build_chunk(net, core)}
    fns = {"snntorch_eager": lambda o: policy.act(o[None], generator=gen)}
    fns.update({name: onnx_fn(m) for name, m in graphs.items()})
    fns["ann_twin_onnx"] = onnx_fn(build_chunk(ann_net))
    fns["matvec"] = matvec_chunk(net, len(ks))
    with threadpool_limits(1):
        out = {name: _stats(ms) for name, ms in _side_by_side(fns, list(obs)).items()}
    for name, m in graphs.items():
        call = onnx_fn(m, batched=True)
        for size in batches:
            rows = [obs[np.arange(i, i + size) % len(obs)] for i in range(0, chunks, size)]
            rows = rows * max(1, 20 // len(rows))  # at least 20 calls
            out[f"{name}_b{size}"] = _stats([ms / size for ms in _time(call, rows)])
    return out
