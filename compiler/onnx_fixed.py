"""ONNX fixed-point backend: integer ops reproducing Lava's bit-accurate LIF and Dense.

The arithmetic is ``runtime/fixed_point.py``'s (Lava ``PyLifResetModelBitAcc`` and the
bit-accurate ``Dense``): int64 ``Mul``/``Div`` by powers of two instead of shifts (signed
``BitShift`` needs opset 28; int64 ``Div`` truncates toward zero exactly like Lava's
``sign(x) * (|x| >> 12)``), ``Where`` for the 24-bit wrap of u, ``Clip`` for v, each left
out at the micro-steps where ``drive_bounds`` proves it cannot act. The micro-steps are
unrolled (no sub-graph per micro-step) and the spike-times-weight products run as a
float ``MatMul`` on 0/1 spikes and integer weights, which is exact: every partial sum is
an integer. They run in float32 (ONNX Runtime's fast MLAS kernel) where the largest
possible drive, ``max_j sum_i |W_ji| 2^(exp_j + 6) + |bias_j|``, is below 2^24, so that
every partial sum is exact in float32's 24-bit significand (``float32_drive``), else in
float64 (exact below 2^53).

- ``core`` graph: ``a_in`` (T, B, H1) int64 graded inputs -> ``spikes1`` .. ``spikesL``
  (T, B, H_l) int64 rasters: the part that runs on the Loihi cores, compared bit for bit
  with Lava ``fixed_pt`` on the golden vectors.
- ``eval`` graph: ``obs``, ``x`` (float64), ``k`` -> ``eps`` (float64): the host-side
  current in float64, quantised with ``Round`` (half to even, like ``numpy.rint``), the
  integer core, and the float readout of the last population's spike counts.
"""

from __future__ import annotations

import numpy as np
import onnx

from compiler.onnx_builder import GraphBuilder, model, value
from compiler.onnx_float import first_layer_current, output_bias, readout
from runtime.fixed_point import (
    ACT_SHIFT,
    DECAY_SHIFT,
    DECAY_UNITY,
    UV_MAX,
    VTH_SHIFT,
    FixedCore,
    FixedPopulation,
)
from runtime.network import FoldedNet

I64 = np.int64


def _decay(b: GraphBuilder, x: str, d: int) -> str:
    return b.op("Div", b.op("Mul", x, b.const(DECAY_UNITY - d, I64)),
                b.const(1 << DECAY_SHIFT, I64))


def _wrap24(b: GraphBuilder, u: str) -> str:
    top, span = b.const(UV_MAX, I64), b.const(2 * UV_MAX, I64)
    w = b.op("Where", b.op("Greater", u, top), b.op("Sub", u, span), u)
    low = b.op("LessOrEqual", w, b.const(-UV_MAX, I64))
    return b.op("Where", low, b.op("Add", u, span), w)


def _drive_max(core: FixedCore, i: int) -> int:
    """The largest |a| population i can receive (before the << 6): ``input_max`` for the
    first, ``max_j sum_i |W_ji| 2^exp_j`` (every input spiking) for the others."""
    if not i:
        return int(core.input_max)
    w = np.abs(core.weights[i - 1].astype(I64)).sum(1)
    return int((w << core.populations[i].weight_exp.astype(I64)).max())


def drive_bounds(core: FixedCore, steps: int) -> list[tuple[int, int]]:
    """Per population, for how many micro-steps from rest u provably stays inside the
    24-bit wrap and v inside the clip, so that the graph may leave them out there (the
    bounds only grow with t, so the safe steps are the first ones). Worst case, in
    integers (a decay only shrinks a magnitude, a reset only lowers |v|):

        |a_1| <= input_max,   |a_l| <= max_j sum_i |W_ji| 2^exp_j          (l >= 2)
        |u_t| <= (|u_{t-1}| (4096 - du - 1)) >> 12  +  |a| 2^6
        |v_t| <= (|v_{t-1}| (4096 - dv)) >> 12  +  max |u|  +  max |bias|

    Both graphs and the reference give the same integers either way; at a micro-step
    where a population could reach a bound it keeps its wrap or clip."""
    out = []
    for i, pop in enumerate(core.populations):
        amax = _drive_max(core, i)
        u = v = u_max = v_max = u_safe = v_safe = 0
        for t in range(steps):
            u = ((u * (DECAY_UNITY - pop.du - 1)) >> DECAY_SHIFT) + (amax << ACT_SHIFT)
            u_max = max(u_max, u)
            v = ((v * (DECAY_UNITY - pop.dv)) >> DECAY_SHIFT) + u_max \
                + int(np.abs(pop.bias).max(initial=0))
            v_max = max(v_max, v)
            u_safe += u_safe == t and u_max < UV_MAX
            v_safe += v_safe == t and v_max <= UV_MAX - 1
        out.append((u_safe, v_safe))
    return out


def float32_drive(core: FixedCore, i: int) -> bool:
    """Whether the drive of population i + 1 (with its bias) is exact in float32: every
    partial sum of the spike-times-weight product is an integer of magnitude below 2^24."""
    bias = int(np.abs(core.populations[i + 1].bias).max(initial=0))
    return (_drive_max(core, i + 1) << ACT_SHIFT) + bias < 1 << 24


def spike_dtypes(core: FixedCore) -> list[type]:
    """The float type each population's 0/1 spikes (and spike counts) are held in: float32
    where they feed a drive exact in float32 (``float32_drive``), else float64."""
    last = len(core.populations) - 1
    return [np.float32 if i < last and float32_drive(core, i) else np.float64
            for i in range(last + 1)]


def _drive_weight(top: GraphBuilder, core: FixedCore, i: int, dtype: type) -> str:
    """(W_i 2^(exp + 6)).T in ``dtype``, computed in the graph from the stored 8-bit
    mantissas and integer scales (folded at load): a 0/1 spike row times it is the integer
    drive ``a << 6`` of population i + 1, exact (``float32_drive`` says when float32
    suffices; float64 always does, every partial sum being an integer far below 2^53)."""
    nxt = core.populations[i + 1]
    scale = (np.int64(1) << (nxt.weight_exp.astype(I64) + ACT_SHIFT)).reshape(-1, 1)
    w = top.op("Mul", top.cast(top.const(core.weights[i], np.int16), dtype),
               top.cast(top.const(scale, I64), dtype))
    return top.op("Transpose", w)


def _population(b: GraphBuilder, top: GraphBuilder, pop: FixedPopulation, drives: list[str],
                fits: tuple[int, int], folded: bool, dtype: type) -> list[str]:
    """One population over all micro-steps from rest, given its drive ``a << 6`` at each
    (with the bias added already when ``folded``); its spikes per micro-step, 0/1 in
    ``dtype``. The first step's decays of a zero state and the last step's reset are left
    out, and the wrap and the clip at the first ``fits`` micro-steps (``drive_bounds``)."""
    u_safe, v_safe = fits
    u = v = None
    spikes = []
    for t, drive in enumerate(drives):
        if folded:
            ub = drive  # u + bias
        else:
            u = drive if u is None else b.op("Add", _decay(b, u, pop.du + 1), drive)
            u = u if t < u_safe else _wrap24(b, u)
            ub = b.op("Add", u, top.const(pop.bias, I64))
        v = ub if v is None else b.op("Add", _decay(b, v, pop.dv), ub)
        if t >= v_safe:
            v = b.op("Clip", v, b.const(-UV_MAX + 1, I64), b.const(UV_MAX - 1, I64))
        fired = b.op("Greater", v, top.const(pop.vth.astype(I64) << VTH_SHIFT, I64))
        spikes.append(b.cast(fired, dtype))
        if t + 1 < len(drives):
            v = b.op("Where", fired, b.const(0, I64), v)
    return spikes


def unrolled_core(b: GraphBuilder, core: FixedCore, a_in: str, steps: int,
                  top: GraphBuilder | None = None) -> list[list[str]]:
    """The integer core over ``steps`` micro-steps from rest: for each population its
    spikes (1, B, H_l) per micro-step as 0/1 floats (float32 where they feed a float32
    drive, else float64). ``a_in`` (T, B, H1) int64 graded inputs; ``top``: the builder of
    the outermost graph, which holds the weights. A population runs all micro-steps before
    the next (layer by layer, as in ``onnx_float.denoise``), so each weight matrix takes
    the T spike rows in one product."""
    top = top or b
    fits = drive_bounds(core, steps)
    pops = core.populations
    # a population whose u is its drive (du = 4095, no wrap) takes drive + bias in one add
    folded = [pop.du + 1 == DECAY_UNITY and u_safe == steps
              for pop, (u_safe, _) in zip(pops, fits, strict=True)]
    dtypes = spike_dtypes(core)
    drive = b.op("Mul", a_in, b.const(1 << ACT_SHIFT, I64))
    if folded[0]:
        drive = b.op("Add", drive, top.const(pops[0].bias, I64))
    out = []
    for i, pop in enumerate(pops):
        spikes = _population(b, top, pop, b.split(drive, steps), fits[i], folded[i], dtypes[i])
        out.append(spikes)
        if i + 1 < len(pops):
            d = b.op("MatMul", b.op("Concat", *spikes, axis=0),
                     _drive_weight(top, core, i, dtypes[i]))
            if folded[i + 1]:
                d = b.op("Add", d, top.cast(top.const(pops[i + 1].bias, I64), dtypes[i]))
            drive = b.cast(d, I64)
    return out


def build_core(core: FixedCore, steps: int) -> onnx.ModelProto:
    """``a_in`` (T = ``steps``, B, H1) -> ``spikes1`` .. ``spikesL`` (T, B, H_l) int64."""
    b = GraphBuilder()
    widths = [len(p.bias_mant) for p in core.populations]
    for i, per_step in enumerate(unrolled_core(b, core, "a_in", steps)):
        b.op("Cast", b.op("Concat", *per_step, axis=0), to=onnx.TensorProto.INT64,
             name=f"spikes{i + 1}")
    return model(b.graph("loihi_core", [value("a_in", I64, [steps, "B", widths[0]])],
                         [value(f"spikes{i + 1}", I64, [steps, "B", w])
                          for i, w in enumerate(widths)]),
                 "Loihi 2 bit-accurate spiking core")


def denoise_fixed(b: GraphBuilder, net: FoldedNet, core: FixedCore, obs: str, x: str,
                  k: str | None, state: str | None = None, top: GraphBuilder | None = None,
                  bias: str | None = None, row: str | None = None) -> tuple[str, list[str]]:
    """eps (1, B, A) float64 through the integer core, and the spike counts (1, B, H_l)
    per population (float32 or float64, see ``unrolled_core``); ``state``, ``bias``,
    ``row``: the precomputed state current, ``output_bias`` and bias-table row, if any;
    ``top``: the outermost graph's builder, which holds the weights when ``b`` builds a
    loop body."""
    f64 = np.float64
    cur = first_layer_current(b, net, obs, x, k, f64, state, top, row)
    scaled = b.op("Round", b.op("Mul", cur, b.const(core.input_scale, f64)))
    lim = float(core.input_max)
    a_in = b.cast(b.op("Clip", scaled, b.const(-lim, f64), b.const(lim, f64)), I64)
    counts = [b.op("Sum", *per_step)
              for per_step in unrolled_core(b, core, a_in, net.micro_steps, top)]
    eps = readout(b, net, counts[-1], bias or output_bias(b, net, obs, f64, top), f64, None,
                  top)
    return eps, counts


def build_eval(net: FoldedNet, core: FixedCore) -> onnx.ModelProto:
    b = GraphBuilder()
    f64 = np.float64
    b.op("Squeeze", denoise_fixed(b, net, core, "obs", "x", "k")[0], b.const([0], I64),
         name="eps")
    inputs = [value("obs", f64, ["B", net.enc_w1.shape[1]]),
              value("x", f64, ["B", net.action_size]), value("k", I64, ["B"])]
    return model(b.graph("sdp_eval_fixed", inputs, [value("eps", f64, ["B", net.action_size])]),
                 "spiking denoiser, Loihi 2 fixed point, one evaluation")
