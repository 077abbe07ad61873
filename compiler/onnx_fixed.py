"""ONNX fixed-point backend: integer ops reproducing Lava's bit-accurate LIF and Dense.

The arithmetic is ``runtime/fixed_point.py``'s (Lava ``PyLifResetModelBitAcc`` and the
bit-accurate ``Dense``): int64 ``Mul``/``Div`` by powers of two instead of shifts (signed
``BitShift`` needs opset 28; int64 ``Div`` truncates toward zero exactly like Lava's
``sign(x) * (|x| >> 12)``), ``Where`` for the 24-bit wrap of u, ``Clip`` for v.

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

from compiler.onnx_builder import GraphBuilder, model, value, zeros_like_rows
from compiler.onnx_float import first_layer_current, readout
from runtime.fixed_point import ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, UV_MAX, VTH_SHIFT, FixedCore
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


def _core_body(core: FixedCore) -> onnx.GraphProto:
    """Scan body: state (u_l, v_l per population), scan input a_1(t), scan outputs s_l(t)."""
    b = GraphBuilder("body/")
    n = len(core.populations)
    widths = [len(p.bias_mant) for p in core.populations]
    a = "a_t"
    outs_state, outs_spk = [], []
    for i, pop in enumerate(core.populations):
        u = _wrap24(b, b.op("Add", _decay(b, f"u{i + 1}", pop.du + 1),
                            b.op("Mul", a, b.const(1 << ACT_SHIFT, I64))))
        v = b.op("Add", b.op("Add", _decay(b, f"v{i + 1}", pop.dv), u), b.const(pop.bias, I64))
        v = b.op("Clip", v, b.const(-UV_MAX + 1, I64), b.const(UV_MAX - 1, I64))
        fired = b.op("Greater", v, b.const(pop.vth.astype(I64) << VTH_SHIFT, I64))
        v = b.op("Where", fired, b.const(0, I64), v)
        spk = b.op("Cast", fired, to=onnx.TensorProto.INT64)
        outs_state += [b.op("Identity", u, name=f"u{i + 1}_next"),
                       b.op("Identity", v, name=f"v{i + 1}_next")]
        outs_spk.append(b.op("Identity", spk, name=f"s{i + 1}_t"))
        if i + 1 < n:
            nxt = core.populations[i + 1]
            w = b.op("Cast", b.transposed(core.weights[i], np.int16), to=onnx.TensorProto.INT64)
            a = b.op("Mul", b.op("MatMul", spk, w),
                     b.const(np.int64(1) << nxt.weight_exp.astype(I64), I64))
    state_in = []
    for i, w in enumerate(widths):
        state_in += [value(f"u{i + 1}", I64, ["B", w]), value(f"v{i + 1}", I64, ["B", w])]
    state_out = []
    for i, w in enumerate(widths):
        state_out += [value(f"u{i + 1}_next", I64, ["B", w]),
                      value(f"v{i + 1}_next", I64, ["B", w])]
    return b.graph("fixed_micro_step", state_in + [value("a_t", I64, ["B", widths[0]])],
                   state_out + [value(f"s{i + 1}_t", I64, ["B", w])
                                for i, w in enumerate(widths)])


def _scan_core(b: GraphBuilder, core: FixedCore, a_in: str, ref: str) -> list[str]:
    """Spike rasters (T, B, H_l) of all populations; ``ref``: any (B, ...) tensor."""
    widths = [len(p.bias_mant) for p in core.populations]
    init = []
    for w in widths:
        init += [zeros_like_rows(b, ref, w, I64), zeros_like_rows(b, ref, w, I64)]
    outs = b.op("Scan", *init, a_in, outputs=len(init) + len(widths), body=_core_body(core),
                num_scan_inputs=1)
    return outs[len(init):]


def build_core(core: FixedCore) -> onnx.ModelProto:
    b = GraphBuilder()
    widths = [len(p.bias_mant) for p in core.populations]
    first = b.op("Gather", "a_in", b.const(0, I64), axis=0)
    rasters = _scan_core(b, core, "a_in", first)
    for i, r in enumerate(rasters):
        b.op("Identity", r, name=f"spikes{i + 1}")
    return model(b.graph("loihi_core", [value("a_in", I64, ["T", "B", widths[0]])],
                         [value(f"spikes{i + 1}", I64, ["T", "B", w])
                          for i, w in enumerate(widths)]),
                 "Loihi 2 bit-accurate spiking core")


def denoise_fixed(b: GraphBuilder, net: FoldedNet, core: FixedCore, obs: str, x: str, k: str,
                  name: str | None = None, state: str | None = None) -> tuple[str, list[str]]:
    """eps (float64) through the integer core, and the spike counts (B, H_l) per population;
    ``state``: the precomputed state current, if any."""
    f64 = np.float64
    cur = first_layer_current(b, net, obs, x, k, f64, state)
    scaled = b.op("Round", b.op("Mul", cur, b.const(core.input_scale, f64)))
    lim = float(core.input_max)
    a_in = b.op("Cast", b.op("Clip", scaled, b.const(-lim, f64), b.const(lim, f64)),
                to=onnx.TensorProto.INT64)
    counts = [b.op("Cast", b.op("ReduceSum", r, b.const([0], I64), keepdims=0),
                   to=onnx.TensorProto.DOUBLE) for r in _scan_core(b, core, a_in, x)]
    return readout(b, net, counts[-1], f64, name), counts


def build_eval(net: FoldedNet, core: FixedCore) -> onnx.ModelProto:
    b = GraphBuilder()
    f64 = np.float64
    denoise_fixed(b, net, core, "obs", "x", "k", name="eps")
    inputs = [value("obs", f64, ["B", net.enc_w1.shape[1]]),
              value("x", f64, ["B", net.action_size]), value("k", I64, ["B"])]
    return model(b.graph("sdp_eval_fixed", inputs, [value("eps", f64, ["B", net.action_size])]),
                 "spiking denoiser, Loihi 2 fixed point, one evaluation")
