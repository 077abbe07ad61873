"""ONNX float backend: the folded network (``runtime.network.FoldedNet``) as ONNX graphs.

- ``eval`` graph: inputs ``obs`` (B, obs_dim) raw, ``x`` (B, A), ``k`` (B,) int64 -> ``eps``
  (B, A): a whole denoising evaluation in one call. The encoder, SDLI gate and step table
  give the first-layer current for every micro-step (T, B, H1); the T micro-steps are
  unrolled (T is fixed at compile time), the first one starting from rest without the
  decay of a zero membrane, so a call runs a few dozen nodes and no sub-graph.
- ``step`` graph (spiking only): the same, one micro-step per call with the state explicit:
  inputs ``obs``, ``x``, ``k``, ``t`` (int64 scalar), ``v1`` .. ``vL``, ``counts``; outputs
  ``v1_out`` .. ``vL_out``, ``counts_out`` and ``eps`` (valid after the last micro-step).
The ANN twin's ``eval`` graph is the plain ReLU chain. Equations: ``runtime/network.py``.
"""

from __future__ import annotations

import numpy as np
import onnx

from compiler.onnx_builder import GraphBuilder, model, value
from runtime.network import FoldedNet


def _affine(b: GraphBuilder, x: str, w: np.ndarray, bias: np.ndarray, dt: type,
            top: GraphBuilder | None = None) -> str:
    """``x w.T + bias``, the weight held by ``top`` (the outermost graph) when given."""
    top = top or b
    return b.op("Add", b.op("MatMul", x, top.transposed(w, dt)), top.const(bias, dt))


def encoder_hidden(b: GraphBuilder, net: FoldedNet, obs: str, dt: type) -> str:
    """h = relu(enc_w1 s + enc_b1), (B, obs_hidden)."""
    return b.op("Relu", _affine(b, obs, net.enc_w1, net.enc_b1, dt))


def output_bias(b: GraphBuilder, net: FoldedNet, obs: str, dt: type,
                top: GraphBuilder | None = None) -> str:
    """The readout's bias: ``readout_b``, plus ``state_w h(s)`` (B, A) where the network
    has a state readout; it depends on the observation only (once per chunk)."""
    top = top or b
    if net.state_w is None:
        return top.const(net.readout_b, dt)
    state = b.op("MatMul", encoder_hidden(b, net, obs, dt), top.transposed(net.state_w, dt))
    return b.op("Add", top.const(net.readout_b, dt), state)


def state_current(b: GraphBuilder, net: FoldedNet, obs: str, dt: type) -> str:
    """c * g_t for every micro-step, (T, B, H1): depends on the observation only, so a
    chunk graph computes it once, outside its loop over denoising steps."""
    c = _affine(b, encoder_hidden(b, net, obs, dt), net.enc_w2, net.enc_b2, dt)
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


def first_layer_current(b: GraphBuilder, net: FoldedNet, obs: str, x: str, k: str | None,
                        dt: type, state: str | None = None,
                        top: GraphBuilder | None = None, row: str | None = None) -> str:
    """I_1(t) for every micro-step, (T, B, H1); ``state``: a precomputed state current;
    ``top``: the builder holding the weights (default ``b``); ``row``: the step's row of
    the bias table, gathered already (then ``k`` is not used)."""
    state = state or state_current(b, net, obs, dt)
    top = top or b
    row = row or b.op("Gather", top.const(net.bias_table, dt), k, axis=0)
    base = b.op("Add", b.op("MatMul", x, top.transposed(net.w_in, dt)), row)
    return b.op("Add", state, base)


def lif_micro_step(b: GraphBuilder, net: FoldedNet, cur: str, v: list[str | None],
                   counts: list[str | None], dt: type, top: GraphBuilder | None = None
                   ) -> tuple[list[str], list[str]]:
    """One micro-step of all populations; returns the new membranes and spike counts.
    ``None`` for a membrane or count is the zero of rest (the first micro-step), whose
    ``beta * 0 + I`` and ``0 + s`` are left out; ``top``: the builder of the outermost
    graph, which holds the weights (default ``b``)."""
    one, zero = b.const(1.0, dt), b.const(0.0, dt)
    new_v, new_c = [], []
    for i, vi in enumerate(v):
        vi = cur if vi is None else b.op("Add", b.op("Mul", vi, b.const(net.beta_lif, dt)), cur)
        fired = b.op("Greater", vi, one)
        new_v.append(b.op("Where", fired, zero, vi))
        spk = b.cast(fired, dt)
        new_c.append(spk if counts[i] is None else b.op("Add", counts[i], spk))
        if i < len(net.hidden_w):
            cur = _affine(b, spk, net.hidden_w[i], net.hidden_b[i], dt, top)
    return new_v, new_c


def readout(b: GraphBuilder, net: FoldedNet, counts: str, bias: str, dt: type,
            name: str | None = None, top: GraphBuilder | None = None) -> str:
    """eps = counts (readout_w.T / T) + bias (``output_bias``). The division is a graph op
    (IEEE, the bits numpy's gives), so the graph holds ``readout_w`` as the network stores
    it; with ``top`` the scaled weight is computed in the outermost graph (once per call)."""
    top = top or b
    w = top.op("Div", top.transposed(net.readout_w, dt), top.const(float(net.micro_steps), dt))
    return b.op("Add", b.op("MatMul", counts, w), bias, name=name)


def _io(net: FoldedNet, dt: type) -> list[onnx.ValueInfoProto]:
    return [value("obs", dt, ["B", net.enc_w1.shape[1]]),
            value("x", dt, ["B", net.action_size]), value("k", np.int64, ["B"])]


def lif_population(b: GraphBuilder, beta: float, currents: list[str], dt: type) -> list[str]:
    """One population over all micro-steps from rest, given its input current at each:
    ``v(t) = beta v(t-1) + I(t)``, ``s(t) = [v(t) > 1]``, ``v(t) <- 0`` where ``s(t)``;
    the spikes (0/1 in ``dt``) per micro-step. The reset and the decay are one product,
    ``v(t) = v(t-1) (beta - beta s(t-1)) + I(t)``: the factor is exactly beta or 0, so
    the values are those of the reset-then-decay order (a reset membrane may be -0.0,
    which adds like 0). Elementwise products are several times cheaper than ``Where`` in
    ONNX Runtime. The first step's ``beta * 0 + I`` and the last step's reset are left
    out (the one is I, the other is never read)."""
    one, b_ = b.const(1.0, dt), b.const(beta, dt)
    v, keep, spikes = None, None, []
    for t, cur in enumerate(currents):
        v = cur if v is None else b.op("Add", b.op("Mul", v, keep), cur)
        spikes.append(b.cast(b.op("Greater", v, one), dt))
        if t + 1 < len(currents):
            keep = b.op("Sub", b_, b.op("Mul", spikes[-1], b_))
    return spikes


def denoise(b: GraphBuilder, net: FoldedNet, obs: str, x: str, k: str | None, dt: type,
            state: str | None = None, top: GraphBuilder | None = None,
            bias: str | None = None, row: str | None = None) -> tuple[str, list[str]]:
    """eps (1, B, A) for a batch and the spike counts (1, B, H_l) of every population (none
    for the ANN twin); ``state``, ``bias``, ``row``: the precomputed state current,
    ``output_bias`` and bias-table row, if any; ``top``: the outermost graph's builder,
    which holds the weights when ``b`` builds a loop body.

    A population runs all T micro-steps before the next one starts (the next layer's input
    at micro-step t depends on this layer's spikes at t only), so each weight matrix meets
    the T spike rows of a population in one ``MatMul``."""
    cur = first_layer_current(b, net, obs, x, k, dt, state, top, row)
    bias = bias or output_bias(b, net, obs, dt, top)
    if not net.spiking:
        h = b.op("Relu", cur)
        for w, hb in zip(net.hidden_w, net.hidden_b, strict=True):
            h = b.op("Relu", _affine(b, h, w, hb, dt, top))
        return b.op("Add", b.op("MatMul", h, (top or b).transposed(net.readout_w, dt)),
                    bias), []
    steps = net.micro_steps
    counts = []
    for i in range(len(net.widths)):
        spikes = lif_population(b, net.beta_lif, b.split(cur, steps), dt)
        counts.append(b.op("Sum", *spikes))
        if i < len(net.hidden_w):
            cur = _affine(b, b.op("Concat", *spikes, axis=0), net.hidden_w[i],
                          net.hidden_b[i], dt, top)
    return readout(b, net, counts[-1], bias, dt, None, top), counts


def build_eval(net: FoldedNet, dtype: type = np.float64) -> onnx.ModelProto:
    """The whole-evaluation graph (module docstring)."""
    b = GraphBuilder()
    b.op("Squeeze", denoise(b, net, "obs", "x", "k", dtype)[0], b.const([0], np.int64),
         name="eps")
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
    counts: list[str | None] = [*([None] * (len(widths) - 1)), "counts"]
    new_v, new_c = lif_micro_step(b, net, cur, list(v_in), counts, dtype)
    for n, n0 in zip(new_v, v_in, strict=True):
        b.op("Identity", n, name=f"{n0}_out")
    b.op("Identity", new_c[-1], name="counts_out")
    readout(b, net, "counts_out", output_bias(b, net, "obs", dtype), dtype, "eps")
    inputs = _io(net, dtype) + [value("t", np.int64, [])]
    inputs += [value(n, dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    inputs.append(value("counts", dtype, ["B", widths[-1]]))
    outputs = [value(f"{n}_out", dtype, ["B", w]) for n, w in zip(v_in, widths, strict=True)]
    outputs += [value("counts_out", dtype, ["B", widths[-1]]),
                value("eps", dtype, ["B", net.action_size])]
    return model(b.graph("sdp_step", inputs, outputs), "spiking denoiser, one micro-step")
