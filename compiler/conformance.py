"""Conformance checks run on every compile.

- ``float_vs_torch``: the ONNX float graph against the trained torch denoiser on whole
  action chunks: the same numpy sampler and the same noise drive both, over observations
  drawn uniformly from the normaliser's box; max |difference| of the actions (raw units).
  Both run in float64: a spiking network's threshold decisions turn float32 rounding
  differences (1e-7) into flipped spikes that move an action by ~1e-2, so float32 graphs
  cannot agree to 1e-5 whatever their correctness.
- ``fixed_vs_lava``: the ONNX fixed-point core against Lava ``fixed_pt`` on the golden
  vectors (graded inputs of whole evaluations): mismatching spike values (must be 0).
- ``lava_float_vs_onnx``: Lava ``floating_pt`` (delays compensated) against the ONNX float
  graph per evaluation, both float64: max |eps difference| and the fraction of
  evaluations within ``LAVA_FLOAT_TOL``.
- ``quantized_vs_float``: action RMSE (normalised units) of the fixed-point network
  against the float network over the same noise, and the firing rates of both.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import torch

from compiler.calibrate import Calibration
from policies.policy import DiffusionPolicy
from runtime.fixed_point import FixedCore
from runtime.golden import graded_inputs
from runtime.lava_core import run_core
from runtime.network import FoldedNet
from runtime.sampler import Sampler, unnormalise

FLOAT_TOL = 1e-5  # max |action difference|, ONNX float vs torch
LAVA_FLOAT_TOL = 1e-9  # max |eps difference| per evaluation, Lava float vs ONNX float


def session(m: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnx_eps(sess: ort.InferenceSession, dtype: type):
    """(x, k, obs) -> eps through an ``eval`` graph."""
    def run(x: np.ndarray, k: np.ndarray, obs: np.ndarray) -> np.ndarray:
        out = sess.run(["eps"], {"obs": obs.astype(dtype), "x": x.astype(dtype),
                                 "k": k.astype(np.int64)})[0]
        return out.astype(np.float64)
    return run


def float_vs_torch(policy: DiffusionPolicy, sess: ort.InferenceSession, sampler: Sampler,
                   samples: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    policy = copy.deepcopy(policy).double()
    lo, hi = policy.obs_norm.lo.numpy(), policy.obs_norm.hi.numpy()
    obs = lo + (hi - lo) * rng.random((samples, len(lo)))
    with torch.no_grad():
        s = policy.obs_norm(torch.as_tensor(obs))

    def torch_eps(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.denoiser(torch.as_tensor(x), torch.as_tensor(k), s).numpy()

    run = onnx_eps(sess, np.float64)
    size, chunk = policy.cfg.action_size, policy.cfg.chunk
    a_lo, a_hi = policy.act_norm.lo.double().numpy(), policy.act_norm.hi.double().numpy()
    ref = sampler.sample(torch_eps, samples, size, np.random.default_rng(seed + 1))
    got = sampler.sample(lambda x, k: run(x, k, obs), samples, size,
                         np.random.default_rng(seed + 1))
    err = np.abs(unnormalise(ref, a_lo, a_hi, chunk) - unnormalise(got, a_lo, a_hi, chunk))
    per = err.reshape(samples, -1).max(1)
    return {"samples": samples, "max_abs_error": float(err.max()),
            "within_tol": float(np.mean(per <= FLOAT_TOL)), "tolerance": FLOAT_TOL}


def golden_inputs(net: FoldedNet, core: FixedCore, golden: Calibration) -> np.ndarray:
    """Graded inputs (N, T, H1) int32 of the golden evaluations (``runtime.golden``
    recomputes them so from an image)."""
    return graded_inputs(net, core, golden.x, golden.k, golden.obs)


def fixed_vs_lava(core_sess: ort.InferenceSession, core: FixedCore,
                  a_in: np.ndarray) -> tuple[dict[str, int], list[np.ndarray]]:
    """Mismatches between ONNX fixed and Lava fixed_pt; returns Lava's rasters too."""
    lava = run_core(core, a_in, "fixed_pt")
    onnx_r = core_sess.run(None, {"a_in": a_in.transpose(1, 0, 2).astype(np.int64)})
    mismatches = sum(int((o.transpose(1, 0, 2).astype(bool) != r).sum())
                     for o, r in zip(onnx_r, lava, strict=True))
    values = sum(r.size for r in lava)
    return {"vectors": int(a_in.shape[0]), "values": values, "mismatches": mismatches}, lava


def lava_float_vs_onnx(net: FoldedNet, sess: ort.InferenceSession,
                       golden: Calibration) -> dict[str, float]:
    cur = net.first_layer_current(golden.x, golden.k, golden.obs).transpose(1, 0, 2)
    rasters = run_core(net, cur, "floating_pt")
    lava_eps = net.readout(rasters[-1].sum(1).astype(np.float64), net.output_bias(golden.obs))
    onnx_e = onnx_eps(sess, np.float64)(golden.x, golden.k, golden.obs)
    per = np.abs(lava_eps - onnx_e).max(1)
    return {"vectors": len(golden), "max_abs_eps_error": float(per.max()),
            "within_tol": float(np.mean(per <= LAVA_FLOAT_TOL)), "tolerance": LAVA_FLOAT_TOL}


def quantized_vs_float(net: FoldedNet, core: FixedCore, sampler: Sampler, obs: np.ndarray,
                       seed: int) -> dict[str, float | list[float]]:
    """Action RMSE (normalised) of fixed vs float chunks and both networks' firing rates."""
    rates_f: list[np.ndarray] = []
    rates_q: list[np.ndarray] = []
    state, bias = net.state_current(obs), net.output_bias(obs)  # once per chunk

    def float_eps(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        counts = net.spike_counts(net.first_layer_current(x, k, obs, state))
        rates_f.append(np.array([c.mean() for c in counts]) / net.micro_steps)
        return net.readout(counts[-1], bias)

    def fixed_eps(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        rasters = core.run(core.quantize_input(net.first_layer_current(x, k, obs, state)))
        rates_q.append(np.array([r.mean() for r in rasters]))
        return net.readout(rasters[-1].sum(0).astype(np.float64), bias)

    size = net.action_size
    ref = sampler.sample(float_eps, len(obs), size, np.random.default_rng(seed))
    got = sampler.sample(fixed_eps, len(obs), size, np.random.default_rng(seed))
    return {"states": len(obs), "action_rmse": float(np.sqrt(np.mean((ref - got) ** 2))),
            "firing_rates_float": np.mean(rates_f, 0).tolist(),
            "firing_rates_fixed": np.mean(rates_q, 0).tolist()}
