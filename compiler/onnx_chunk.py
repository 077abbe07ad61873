"""A whole action chunk in one ONNX call: a ``Loop`` over the denoising steps of an
operating point around the float or the fixed-point denoiser.

Inputs: ``obs`` (B, obs_dim) raw, ``x`` (B, A) the initial noise x_{K-1}, ``ks`` (n,) the
step indices, ``coef`` (n, 5) the per-step rows ``(s0, s1, a, b, c)`` of
``runtime.sampler.Sampler.coefficients``, ``z`` (n, B, A) the step noise; outputs
``x0`` (B, A), the clean normalised chunk, and for spiking networks ``step_spikes``
(n, L), the spikes each population fired in each denoising step (for energy, per-phase
attribution and firing-rate telemetry).
Each loop iteration i:

    eps    = denoiser(obs, x, ks[i])   (the state current c * g_t and the readout's bias,
                                        which depend on obs alone, are computed once, before)
    x0_hat = clip((x - s1 eps) / s0, -1, 1)     (prediction "sample": clip(eps, -1, 1);
                                                 "v": clip(s0 x - s1 eps, -1, 1))
    x      = a x0_hat + b x + c z[i]

DDPM and every DDIM subset are just different (ks, coef), so one graph serves every
operating point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from compiler.onnx_builder import GraphBuilder, model, value
from compiler.onnx_fixed import denoise_fixed, spike_dtypes
from compiler.onnx_float import denoise, output_bias, state_current
from runtime.fixed_point import FixedCore
from runtime.network import FoldedNet

F64, I64 = np.float64, np.int64
Denoise = Callable[[GraphBuilder, str, str, str, GraphBuilder], tuple[str, list[str]]]
# (builder, obs, x, the step's bias-table row, main builder) -> (eps, spike counts)


def _loop_body(net: FoldedNet, den: Denoise, counts_dtypes: list[type] | None,
               prediction: str, top: GraphBuilder) -> onnx.GraphProto:
    """One denoising step; the weights (and what is derived from them alone) live in the
    main graph ``top``, which ONNX Runtime folds once when it loads the model. The chunk
    is carried as (1, B, A), the shape of the denoiser's output, so no step reshapes it."""
    b = GraphBuilder("step/")
    eps, counts = den(b, "obs", "x_in", b.op("Gather", "bias_rows", "i", axis=0), top)
    s0, s1, a, bb, _ = b.split(b.op("Gather", "coef", "i", axis=0), 5)
    if prediction == "sample":
        pred = eps
    elif prediction == "v":
        pred = b.op("Sub", b.op("Mul", s0, "x_in"), b.op("Mul", s1, eps))
    else:
        pred = b.op("Div", b.op("Sub", "x_in", b.op("Mul", s1, eps)), s0)
    x0 = b.op("Clip", pred, b.const(-1.0, F64), b.const(1.0, F64))
    x_next = b.op("Add", b.op("Add", b.op("Mul", a, x0), b.op("Mul", bb, "x_in")),
                  b.op("Gather", "noise", "i", axis=0), name="x_out")
    chunk = [1, "B", net.action_size]
    inputs = [value("i", I64, []), value("cond", np.bool_, []), value("x_in", F64, chunk)]
    outputs = [value("cond", np.bool_, []), value(x_next, F64, chunk)]
    if counts_dtypes is not None:  # scan outputs: this step's spike counts, every neuron
        outputs += [value(c, dt, [1, "B", width])
                    for c, dt, width in zip(counts, counts_dtypes, net.widths, strict=True)]
    return b.graph("denoising_step", inputs, outputs)


def _per_population(b: GraphBuilder, counts: list[str]) -> str:
    """Per population (n, 1, B, H_l) spike counts -> (n, L) spikes per population and step,
    summed over the batch and the population's neurons (exact: integers)."""
    axes = b.const([1, 2, 3], I64)
    return b.op("Concat", *[b.op("Unsqueeze", b.op("ReduceSum", b.cast(c, F64),
                                                   axes, keepdims=0), b.const([1], I64))
                            for c in counts], axis=1)


def build_chunk(net: FoldedNet, core: FixedCore | None = None,
                prediction: str = "epsilon") -> onnx.ModelProto:
    """The chunk graph of the float network, or of its fixed-point core when given;
    ``prediction``: what the network outputs (``runtime.sampler.PREDICTIONS``)."""
    if core is None:
        den: Denoise = lambda b, obs, x, row, top: denoise(  # noqa: E731
            b, net, obs, x, None, F64, state="state", top=top, bias="out_bias", row=row)
        dtypes = [F64] * len(net.widths)
    else:
        den = lambda b, obs, x, row, top: denoise_fixed(  # noqa: E731
            b, net, core, obs, x, None, state="state", top=top, bias="out_bias", row=row)
        dtypes = spike_dtypes(core)
    b = GraphBuilder()
    b.op("Identity", state_current(b, net, "obs", F64), name="state")  # once per chunk
    b.op("Identity", output_bias(b, net, "obs", F64), name="out_bias")
    b.op("Gather", b.const(net.bias_table, F64), "ks", axis=0, name="bias_rows")
    c = b.op("Unsqueeze", b.op("Slice", "coef", b.const([4], I64), b.const([5], I64),
                               b.const([1], I64)), b.const([2], I64))
    b.op("Mul", c, "z", name="noise")  # c z[i] for every step i, once per chunk
    n = b.op("Gather", b.op("Shape", "ks"), b.const(0, I64), axis=0)
    x = b.op("Unsqueeze", "x", b.const([0], I64))
    outputs = [value("x0", F64, ["B", net.action_size])]
    body = _loop_body(net, den, dtypes if net.spiking else None, prediction, b)
    if net.spiking:
        x_out, *per_step = b.op("Loop", n, b.const(True, np.bool_), x,
                                outputs=1 + len(net.widths), body=body)
        b.op("Identity", _per_population(b, per_step), name="step_spikes")
        outputs.append(value("step_spikes", F64, ["n", len(net.widths)]))
    else:
        x_out = b.op("Loop", n, b.const(True, np.bool_), x, body=body)
    b.op("Squeeze", x_out, b.const([0], I64), name="x0")
    inputs = [value("obs", F64, ["B", net.enc_w1.shape[1]]),
              value("x", F64, ["B", net.action_size]),
              value("ks", I64, ["n"]), value("coef", F64, ["n", 5]),
              value("z", F64, ["n", "B", net.action_size])]
    kind = "fixed-point" if core is not None else "float"
    return model(b.graph("chunk", inputs, outputs), f"one action chunk, {kind} denoiser")
