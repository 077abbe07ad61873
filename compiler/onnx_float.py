"""ONNX float backend: the folded network (``runtime.network.FoldedNet``) as ONNX graphs.

- ``eval`` graph: inputs ``obs`` (B, obs_dim) raw, ``x`` (B, A), ``k`` (B,) int64 -> ``eps``
  (B, A): a whole denoising evaluation in one call. The encoder, SDLI gate and step table
  give the first-layer current for every micro-step (T, B, H1); a ``Scan`` over micro-steps
  carries the membranes and the last population's spike counts as its state.
- ``step`` graph (spiking only): the same, one micro-step per call with the state explicit:
  inputs ``obs``, ``x``, ``k``, ``t`` (int64 scalar), ``v1`` .. ``vL``, ``counts``; outputs
  ``v1_out`` .. ``vL_out``, ``counts_out`` and ``eps`` (valid after the last micro-step).
The ANN twin's ``eval`` graph is the plain ReLU chain. Equations: ``runtime/network.py``.
"""

from __future__ import annotations

import numpy as np
import onnx

from compiler.onnx_builder import GraphBuilder, model, value, zeros_like_rows
from runtime.network import FoldedNet


def _affine(b: GraphBuilder, x: str, w: np.ndarray, bias: np.ndarray, dt: type) -> str:
    return b.op("Add", b.op("MatMul", x, b.const(w.T, dt)), b.const(bias, dt))


def first_layer_current(b: GraphBuilder, net: FoldedNet, obs: str, x: str, k: str,
                        dt: type) -> str:
    """I_1(t) for every micro-step, (T, B, H1)."""
    h = b.op("Relu", _affine(b, obs, net.enc_w1, net.enc_b1, dt))
    c = _affine(b, h, net.enc_w2, net.enc_b2, dt)
    t_col = np.arange(net.micro_steps, dtype=dt).reshape(-1, 1, 1)
    if net.sdli_w is None:
        state = b.op("Mul", c, b.const(np.ones_like(t_col), dt))
    else:
        z = _affine(b, obs, net.sdli_w, net.sdli_b, dt)
        tau = b.op("Add", b.op("Mul", b.op("Sigmoid", z), b.const(net.micro_steps - 2.0, dt)),
                   b.const(1.0, dt))
        t = b.const(t_col, dt)
        diff = b.op("Sub", tau, t) if net.sdli_invert else b.op("Sub", t, tau)
        m = b.op("Sigmoid", b.op("Div", diff, b.const(net.sdli_sigma, dt)))
        gate = b.op("Add", b.op("Mul", m, b.const(net.sdli_beta, dt)),
                    b.const(1.0 - net.sdli_beta, dt))
        state = b.op("Mul", c, gate)
    base = b.op("Add", b.op("MatMul", x, b.const(net.w_in.T, dt)),
                b.op("Gather", b.const(net.bias_table, dt), k, axis=0))
    return b.op("Add", state, base)


def lif_micro_step(b: GraphBuilder, net: FoldedNet, cur: str, v: list[str], counts: str,
                   dt: type) -> tuple[list[str], str]:
    """One micro-step of all populations; returns the new membranes and counts."""
    one, zero = b.const(1.0, dt), b.const(0.0, dt)
    new_v = []
    for i, vi in enumerate(v):
        vi = b.op("Add", b.op("Mul", vi, b.const(net.beta_lif, dt)), cur)
        fired = b.op("Greater", vi, one)
        new_v.append(b.op("Where", fired, zero, vi))
        spk = b.op("Cast", fired, to=onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt)))
        if i < len(net.hidden_w):
            cur = _affine(b, spk, net.hidden_w[i], net.hidden_b[i], dt)
    return new_v, b.op("Add", counts, spk)


def _readout(b: GraphBuilder, net: FoldedNet, counts: str, dt: type, name: str) -> str:
    w = net.readout_w.T / net.micro_steps
    return b.op("Add", b.op("MatMul", counts, b.const(w, dt)), b.const(net.readout_b, dt),
                name=name)


def _io(net: FoldedNet, dt: type) -> list[onnx.ValueInfoProto]:
    return [value("obs", dt, ["B", net.enc_w1.shape[1]]),
            value("x", dt, ["B", net.action_size]), value("k", np.int64, ["B"])]


def build_eval(net: FoldedNet, dtype: type = np.float64) -> onnx.ModelProto:
    """The whole-evaluation graph (module docstring)."""
    b = GraphBuilder()
    cur = first_layer_current(b, net, "obs", "x", "k", dtype)
    out = [value("eps", dtype, ["B", net.action_size])]
    if not net.spiking:
        h = b.op("Relu", b.op("Squeeze", cur, b.const([0], np.int64)))
        for w, bias in zip(net.hidden_w, net.hidden_b, strict=True):
            h = b.op("Relu", _affine(b, h, w, bias, dtype))
        b.op("Add", b.op("MatMul", h, b.const(net.readout_w.T, dtype)),
             b.const(net.readout_b, dtype), name="eps")
        return model(b.graph("ann_eval", _io(net, dtype), out), "ANN twin, one evaluation")
    body = GraphBuilder("body/")
    widths = net.widths
    v_in = [f"v{i + 1}" for i in range(len(widths))]
    new_v, counts = lif_micro_step(body, net, "cur_t", v_in, "counts", dtype)
    body_out = [body.op("Identity", n, name=f"{n0}_next") for n, n0 in zip(new_v, v_in,
                                                                             strict=True)]
    body_out.append(body.op("Identity", counts, name="counts_next"))
    body_graph = body.graph(
        "micro_step",
        [value(n, dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
        + [value("counts", dtype, ["B", widths[-1]]), value("cur_t", dtype, ["B", widths[0]])],
        [value(n, dtype, ["B", w]) for n, w in zip(body_out[:-1], widths, strict=True)]
        + [value("counts_next", dtype, ["B", widths[-1]])])
    init = [zeros_like_rows(b, "x", w, dtype) for w in widths]
    init.append(zeros_like_rows(b, "x", widths[-1], dtype))
    final = b.op("Scan", *init, cur, outputs=len(init), body=body_graph, num_scan_inputs=1)
    _readout(b, net, final[-1], dtype, "eps")
    return model(b.graph("sdp_eval", _io(net, dtype), out),
                 f"spiking denoiser, one evaluation of {net.micro_steps} micro-steps")


def build_step(net: FoldedNet, dtype: type = np.float64) -> onnx.ModelProto:
    """The single-micro-step graph with explicit state (module docstring)."""
    if not net.spiking:
        raise ValueError("the single-step graph exists for spiking policies only")
    b = GraphBuilder()
    widths = net.widths
    cur = b.op("Gather", first_layer_current(b, net, "obs", "x", "k", dtype), "t", axis=0)
    v_in = [f"v{i + 1}" for i in range(len(widths))]
    new_v, counts = lif_micro_step(b, net, cur, v_in, "counts", dtype)
    for n, n0 in zip(new_v, v_in, strict=True):
        b.op("Identity", n, name=f"{n0}_out")
    b.op("Identity", counts, name="counts_out")
    _readout(b, net, "counts_out", dtype, "eps")
    inputs = _io(net, dtype) + [value("t", np.int64, [])]
    inputs += [value(n, dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    inputs.append(value("counts", dtype, ["B", widths[-1]]))
    outputs = [value(f"{n}_out", dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    outputs += [value("counts_out", dtype, ["B", widths[-1]]),
                value("eps", dtype, ["B", net.action_size])]
    return model(b.graph("sdp_step", inputs, outputs), "spiking denoiser, one micro-step")
