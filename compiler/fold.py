"""Folding passes: an exported policy (NIR graph + host arrays) -> ``runtime.network.FoldedNet``.

1. Step embedding: ``e_k = MLP(sinusoid(k))`` depends on k only, so it becomes a K-row
   table, added to the input layer's bias: ``bias_table[k] = b_in + e_k``.
2. Observation normaliser: ``s_norm = 2 (s - lo) / span - 1`` (0 for constant dims) is
   affine, so it folds into the two maps that read the state (encoder, SDLI latency):
   ``W s_norm + b = (W D) s + (b + W o)`` with ``D = diag(2 / span)``, ``o = -2 lo / span - 1``.
3. Thresholds (LCMT): a LIF population with per-channel threshold theta and zero reset
   spikes identically when its input current and threshold are both divided by theta,
   so the rows feeding population l (weights, biases, and for l = 1 the state current
   and the bias table) are divided by theta_l and every threshold becomes 1.

4. State readout (policies trained with one): ``W_s c = W_s (enc_w2 h + enc_b2)`` becomes
   ``state_w = W_s enc_w2`` on the encoder's hidden layer h, and ``W_s enc_b2`` joins
   the readout bias (before the thresholds are folded into ``enc_w2``).

The action normaliser is not folded: x0 is clamped to [-1, 1] in normalised units, so the
sampler un-normalises after denoising (``act_lo``, ``act_hi`` travel in the manifest).
"""

from __future__ import annotations

import numpy as np

from compiler.export import Exported
from policies.normalize import MIN_RANGE
from runtime.network import FoldedNet


def normaliser_affine(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with s_norm = scale * s + offset (both 0 where the range is constant)."""
    span = hi - lo
    ok = span > MIN_RANGE
    scale = np.where(ok, 2.0 / np.where(ok, span, 1.0), 0.0)
    offset = np.where(ok, -lo * scale - 1.0, 0.0)
    return scale, offset


def _fold_affine(w: np.ndarray, b: np.ndarray, scale: np.ndarray,
                 offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return w * scale[None, :], b + w @ offset


def fold(exported: Exported) -> FoldedNet:
    """The deployable float network (see the module docstring)."""
    g, host, meta = exported.graph.nodes, exported.host, exported.meta
    spiking = meta["kind"] != "ann"
    scale, offset = normaliser_affine(host["obs_lo"], host["obs_hi"])
    enc_w1, enc_b1 = _fold_affine(host["enc_w1"], host["enc_b1"], scale, offset)
    layers = sum(1 for name in g if name.startswith("lif"))
    dense = [g[f"dense{i}"] for i in range(1, layers)]
    net = FoldedNet(
        enc_w1=enc_w1, enc_b1=enc_b1, enc_w2=host["enc_w2"].copy(), enc_b2=host["enc_b2"].copy(),
        w_in=np.array(g["w_in"].weight, np.float64),
        bias_table=host["step_table"] + np.asarray(g["w_in"].bias)[None, :],
        hidden_w=[np.array(d.weight, np.float64) for d in dense],
        hidden_b=[np.array(d.bias, np.float64) for d in dense],
        readout_w=np.array(g["readout"].weight, np.float64),
        readout_b=np.array(g["readout"].bias, np.float64),
        beta_lif=float(meta["lif_beta"]), micro_steps=int(meta["micro_steps"]) if spiking else 1,
        spiking=spiking)
    if "state_w" in host:
        net.state_w = host["state_w"] @ host["enc_w2"]
        net.readout_b = net.readout_b + host["state_w"] @ host["enc_b2"]
    if not spiking:
        return net
    if "sdli_w" in host:
        net.sdli_w, net.sdli_b = _fold_affine(host["sdli_w"], host["sdli_b"], scale, offset)
        net.sdli_sigma, net.sdli_beta = float(meta["sdli_sigma"]), float(meta["sdli_beta"])
        net.sdli_invert = bool(meta["sdli_invert"])
    theta = [np.asarray(g[f"lif{i + 1}"].v_threshold, np.float64) for i in range(layers)]
    net.w_in = net.w_in / theta[0][:, None]
    net.bias_table = net.bias_table / theta[0][None, :]
    net.enc_w2 = net.enc_w2 / theta[0][:, None]
    net.enc_b2 = net.enc_b2 / theta[0]
    for i in range(len(net.hidden_w)):
        net.hidden_w[i] = net.hidden_w[i] / theta[i + 1][:, None]
        net.hidden_b[i] = net.hidden_b[i] / theta[i + 1]
    return net
