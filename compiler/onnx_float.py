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
    return b.op("Add", b.op("MatMul", x, b.transposed(w, dt)), b.const(bias, dt))


def state_current(b: GraphBuilder, net: FoldedNet, obs: str, dt: type) -> str:
    """c * g_t for every micro-step, (T, B, H1): depends on the observation only, so a
    chunk graph computes it once, outside its loop over denoising steps."""
    h = b.op("Relu", _affine(b, obs, net.enc_w1, net.enc_b1, dt))
    c = _affine(b, h, net.enc_w2, net.enc_b2, dt)
    t_col = np.arange(net.micro_steps, dtype=dt).reshape(-1, 1, 1)
    if net.sdli_w is None:
        return b.op("Mul", c, b.const(np.ones_like(t_col), dt))
    z = _affine(b, obs, net.sdli_w, net.sdli_b, dt)
    tau = b.op("Add", b.op("Mul", b.op("Sigmoid", z), b.const(net.micro_steps - 2.0, dt)),
               b.const(1.0, dt))
    t = b.const(t_col, dt)
    diff = b.op("Sub", tau, t) if net.sdli_invert else b.op("Sub", t, tau)
    m = b.op("Sigmoid", b.op("Div", diff, b.const(net.sdli_sigma, dt)))
    gate = b.op("Add", b.op("Mul", m, b.const(net.sdli_beta, dt)),
                b.const(1.0 - net.sdli_beta, dt))
    return b.op("Mul", c, gate)


def first_layer_current(b: GraphBuilder, net: FoldedNet, obs: str, x: str, k: str,
                        dt: type, state: str | None = None) -> str:
    """I_1(t) for every micro-step, (T, B, H1); ``state``: a precomputed state current."""
    state = state or state_current(b, net, obs, dt)
    base = b.op("Add", b.op("MatMul", x, b.transposed(net.w_in, dt)),
                b.op("Gather", b.const(net.bias_table, dt), k, axis=0))
    return b.op("Add", state, base)


def lif_micro_step(b: GraphBuilder, net: FoldedNet, cur: str, v: list[str],
                   counts: list[str], dt: type) -> tuple[list[str], list[str]]:
    """One micro-step of all populations; returns the new membranes and spike counts."""
    one, zero = b.const(1.0, dt), b.const(0.0, dt)
    new_v, new_c = [], []
    for i, vi in enumerate(v):
        vi = b.op("Add", b.op("Mul", vi, b.const(net.beta_lif, dt)), cur)
        fired = b.op("Greater", vi, one)
        new_v.append(b.op("Where", fired, zero, vi))
        spk = b.op("Cast", fired, to=onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt)))
        new_c.append(b.op("Add", counts[i], spk))
        if i < len(net.hidden_w):
            cur = _affine(b, spk, net.hidden_w[i], net.hidden_b[i], dt)
    return new_v, new_c


def readout(b: GraphBuilder, net: FoldedNet, counts: str, dt: type,
            name: str | None = None) -> str:
    """eps = counts (readout_w.T / T) + readout_b. The division is a graph op (IEEE, the
    bits numpy's gives), so the graph holds ``readout_w`` as the network stores it."""
    w = b.op("Div", b.transposed(net.readout_w, dt), b.const(float(net.micro_steps), dt))
    return b.op("Add", b.op("MatMul", counts, w), b.const(net.readout_b, dt), name=name)


def _io(net: FoldedNet, dt: type) -> list[onnx.ValueInfoProto]:
    return [value("obs", dt, ["B", net.enc_w1.shape[1]]),
            value("x", dt, ["B", net.action_size]), value("k", np.int64, ["B"])]


def _scan_body(net: FoldedNet, dt: type) -> onnx.GraphProto:
    body = GraphBuilder("body/")
    widths = net.widths
    v_in = [f"v{i + 1}" for i in range(len(widths))]
    c_in = [f"n{i + 1}" for i in range(len(widths))]
    new_v, new_c = lif_micro_step(body, net, "cur_t", v_in, c_in, dt)
    outs = [body.op("Identity", n, name=f"{n0}_next")
            for n, n0 in zip(new_v + new_c, v_in + c_in, strict=True)]
    decl = [value(n, dt, ["B", w]) for n, w in zip(v_in + c_in, widths + widths, strict=True)]
    out_decl = [value(n, dt, ["B", w]) for n, w in zip(outs, widths + widths, strict=True)]
    return body.graph("micro_step", decl + [value("cur_t", dt, ["B", widths[0]])], out_decl)


def denoise(b: GraphBuilder, net: FoldedNet, obs: str, x: str, k: str, dt: type,
            name: str | None = None, state: str | None = None) -> tuple[str, list[str]]:
    """eps for a batch and the spike counts of every population (none for the ANN twin);
    ``state``: the precomputed state current, if any."""
    cur = first_layer_current(b, net, obs, x, k, dt, state)
    if not net.spiking:
        h = b.op("Relu", b.op("Squeeze", cur, b.const([0], np.int64)))
        for w, bias in zip(net.hidden_w, net.hidden_b, strict=True):
            h = b.op("Relu", _affine(b, h, w, bias, dt))
        return b.op("Add", b.op("MatMul", h, b.transposed(net.readout_w, dt)),
                    b.const(net.readout_b, dt), name=name), []
    widths = net.widths
    init = [zeros_like_rows(b, x, w, dt) for w in widths + widths]
    final = b.op("Scan", *init, cur, outputs=len(init), body=_scan_body(net, dt),
                 num_scan_inputs=1)
    counts = final[len(widths):]
    return readout(b, net, counts[-1], dt, name), counts


def build_eval(net: FoldedNet, dtype: type = np.float64) -> onnx.ModelProto:
    """The whole-evaluation graph (module docstring)."""
    b = GraphBuilder()
    denoise(b, net, "obs", "x", "k", dtype, name="eps")
    out = [value("eps", dtype, ["B", net.action_size])]
    doc = f"spiking denoiser, one evaluation of {net.micro_steps} micro-steps" \
        if net.spiking else "ANN twin, one evaluation"
    return model(b.graph("eval", _io(net, dtype), out), doc)


def build_step(net: FoldedNet, dtype: type = np.float64) -> onnx.ModelProto:
    """The single-micro-step graph with explicit state (module docstring)."""
    if not net.spiking:
        raise ValueError("the single-step graph exists for spiking policies only")
    b = GraphBuilder()
    widths = net.widths
    cur = b.op("Gather", first_layer_current(b, net, "obs", "x", "k", dtype), "t", axis=0)
    v_in = [f"v{i + 1}" for i in range(len(widths))]
    zeros = [zeros_like_rows(b, "x", w, dtype) for w in widths[:-1]]
    new_v, new_c = lif_micro_step(b, net, cur, v_in, [*zeros, "counts"], dtype)
    for n, n0 in zip(new_v, v_in, strict=True):
        b.op("Identity", n, name=f"{n0}_out")
    b.op("Identity", new_c[-1], name="counts_out")
    readout(b, net, "counts_out", dtype, "eps")
    inputs = _io(net, dtype) + [value("t", np.int64, [])]
    inputs += [value(n, dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    inputs.append(value("counts", dtype, ["B", widths[-1]]))
    outputs = [value(f"{n}_out", dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    outputs += [value("counts_out", dtype, ["B", widths[-1]]),
                value("eps", dtype, ["B", net.action_size])]
    return model(b.graph("sdp_step", inputs, outputs), "spiking denoiser, one micro-step")
