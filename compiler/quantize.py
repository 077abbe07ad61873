"""Quantisation pass: a folded float network -> Loihi 2 fixed point (``runtime.fixed_point``).

Per population l, with folded thresholds (all 1) and v in units of ``vth_l << 6``:
- leak: ``dv = rint(4096 (1 - beta))``, ``du = 4095`` (the current forgets itself each
  step, so v <- beta v + I);
- population 1 (graded input from the host): ``vth_1 = min(4096, input_max / (1.25 p))``
  with p the largest |I_1| seen on calibration data, input ``a_1 = rint(I_1 vth_1)``;
- populations l >= 2: weights ``W_q = 2 rint(W vth_l / 2^(e_l + 1))`` (even, |W_q| <= 254),
  ``vth_l = floor(254 2^e_l / max|W|)``; the exponent e_l is the smallest that gives
  ``vth_l >= 4096`` (threshold rounding below 0.025%), lowered while the worst-case input
  of one micro-step (all positive or all negative weights of a row firing together)
  could wrap the 24-bit current;
- biases: ``rint(b vth_l 64)`` as a 13-bit mantissa with the smallest 3-bit exponent.
Every limit that cannot be met is returned as a ``Violation`` (nothing raises here), so
the compiler can report all of them at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from hardware.loihi2 import Loihi2Limits
from runtime.fixed_point import ACT_SHIFT, DECAY_UNITY, VTH_SHIFT, FixedCore, FixedPopulation
from runtime.network import FoldedNet

VTH_TARGET = 4096
INPUT_MARGIN = 1.25


@dataclass(frozen=True)
class Violation:
    """One broken hardware limit: where, which limit, the value found and the allowed one."""

    layer: str
    limit: str
    value: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.layer}: {self.limit} is {self.value} (allowed {self.allowed})"


@dataclass
class Quantized:
    core: FixedCore
    violations: list[Violation]
    zeroed_fraction: list[float]  # per weight layer: nonzero float weights that became 0
    weight_rmse: list[float]  # per weight layer, relative to max |W|


def population_name(i: int) -> str:
    return f"lif{i + 1}"


def quantize_leak(beta: float, layer: str, limits: Loihi2Limits,
                  out: list[Violation]) -> int:
    ideal = DECAY_UNITY * (1.0 - beta)
    dv = int(np.rint(ideal))
    top = (1 << limits.decay_bits) - 1
    if not 0 <= dv <= top:
        out.append(Violation(layer, "leak dv = 4096 (1 - beta)", f"{ideal:g}", f"0..{top}"))
        return int(np.clip(dv, 0, top))
    if ideal > 0 and abs(dv - ideal) / ideal > limits.max_leak_error:
        out.append(Violation(layer, "leak 1 - beta, relative rounding error",
                             f"{abs(dv - ideal) / ideal:.1%} (1 - beta = {1 - beta:.3g})",
                             f"<= {limits.max_leak_error:.0%}"))
    return dv


def quantize_bias(bias_v: np.ndarray, layer: str, limits: Loihi2Limits,
                  out: list[Violation]) -> tuple[np.ndarray, np.ndarray]:
    """Mantissa and exponent per neuron for effective biases ``bias_v`` (v units)."""
    b = np.rint(bias_v)
    exp = np.zeros(b.shape, np.int64)
    top = limits.bias_mant_max
    while True:
        mant = np.rint(b / (1 << exp))
        over = np.abs(mant) > top
        if not over.any() or (exp[over] >= limits.bias_exp_max).all():
            break
        exp = np.where(over & (exp < limits.bias_exp_max), exp + 1, exp)
    mant = np.rint(b / (1 << exp))
    if (np.abs(mant) > top).any():
        worst = float(np.abs(b).max())
        out.append(Violation(layer, "bias (13-bit mantissa << 3-bit exponent)",
                             f"{worst:.0f}", f"|b| <= {top << limits.bias_exp_max}"))
        mant = np.clip(mant, -top, top)
    return mant.astype(np.int64), exp


def quantize_weights(w: np.ndarray, layer: str, limits: Loihi2Limits,
                     out: list[Violation]) -> tuple[np.ndarray, int, int]:
    """(W_q, exponent, vth) for folded weights ``w`` into one group of threshold 1."""
    m = float(np.abs(w).max()) or 1.0
    wmax = limits.weight_max
    e = limits.weight_exp_min
    while e < limits.weight_exp_max and np.floor(wmax * 2.0**e / m) < VTH_TARGET:
        e += 1
    while True:
        vth = int(min(np.floor(wmax * 2.0**e / m), limits.vth_max))
        wq = 2 * np.rint(w * vth / 2.0 ** (e + 1))
        worst = int(max(np.clip(wq, 0, None).sum(1).max(), -np.clip(wq, None, 0).sum(1).min()))
        peak = (worst << e) << ACT_SHIFT
        if peak <= limits.uv_max or e == limits.weight_exp_min:
            break
        e -= 1
    if peak > limits.uv_max:
        out.append(Violation(layer, "worst-case synaptic input per step (24-bit current)",
                             str(peak), f"<= {limits.uv_max}"))
    if vth < 1:
        out.append(Violation(layer, "threshold vth (17 bits)", "< 1", f"1..{limits.vth_max}"))
        vth = 1
    return wq.astype(np.int64), e, vth


def sort_by_weight_scale(net: FoldedNet) -> FoldedNet:
    """Reorder the neurons of populations 2..L by the largest |weight| feeding each (an
    exact transform: rows in, columns out), so that equal-size groups of consecutive
    neurons have similar weight scales."""
    net = copy.deepcopy(net)
    for i in range(len(net.hidden_w)):
        order = np.argsort(np.abs(net.hidden_w[i]).max(1), kind="stable")
        net.hidden_w[i], net.hidden_b[i] = net.hidden_w[i][order], net.hidden_b[i][order]
        if i + 1 < len(net.hidden_w):
            net.hidden_w[i + 1] = net.hidden_w[i + 1][:, order]
        else:
            net.readout_w = net.readout_w[:, order]
    return net


def _input_population(net: FoldedNet, calib_current: np.ndarray, limits: Loihi2Limits,
                      out: list[Violation]) -> tuple[FixedPopulation, int]:
    input_max = (1 << (limits.graded_input_bits - 1)) - 1
    peak = float(np.abs(calib_current).max()) or 1.0
    vth1 = int(min(VTH_TARGET, np.floor(input_max / (INPUT_MARGIN * peak))))
    if vth1 < 1 << VTH_SHIFT:
        out.append(Violation(population_name(0), "graded input resolution (18-bit input)",
                             f"1/{vth1} of threshold at |I| up to {peak:.3g}", ">= 1/64"))
        vth1 = max(vth1, 1)
    n = net.widths[0]
    zeros = np.zeros(n, np.int64)
    pop = FixedPopulation(vth=np.full(n, vth1, np.int64), du=DECAY_UNITY - 1,
                          dv=quantize_leak(net.beta_lif, population_name(0), limits, out),
                          bias_mant=zeros, bias_exp=zeros.copy(), weight_exp=zeros.copy(),
                          groups=[n])
    return pop, input_max


def quantize_net(net: FoldedNet, calib_current: np.ndarray, limits: Loihi2Limits,
                 groups: int = 8) -> Quantized:
    """Fixed-point core for ``net`` (whose populations 2..L must already be sorted by
    ``sort_by_weight_scale``); ``calib_current``: first-layer currents I_1 seen on
    calibration data (any shape), for the graded-input range; ``groups``: LIF processes
    per population 2..L."""
    out: list[Violation] = []
    first, input_max = _input_population(net, calib_current, limits, out)
    pops, weights, zeroed, rmse = [first], [], [], []
    for i, (w, b) in enumerate(zip(net.hidden_w, net.hidden_b, strict=True)):
        name = population_name(i + 1)
        layer = f"dense{i + 1} -> {name}"
        n = w.shape[0]
        sizes = [len(part) for part in np.array_split(np.arange(n), min(groups, n))]
        wq = np.zeros(w.shape, np.int64)
        vth, exps = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for sl in FixedPopulation.slices(sizes):
            wq[sl], exps[sl], vth[sl] = quantize_weights(w[sl], layer, limits, out)
        back = wq * 2.0 ** exps[:, None] / vth[:, None]
        nz = w != 0
        frac = float(((wq == 0) & nz).sum() / max(int(nz.sum()), 1))
        if frac > limits.max_zeroed_weights:
            out.append(Violation(layer, f"nonzero weights rounding to 0 ({limits.weight_bits}"
                                 "-bit mantissa)", f"{frac:.0%}",
                                 f"<= {limits.max_zeroed_weights:.0%}"))
        zeroed.append(frac)
        rmse.append(float(np.sqrt(np.mean((back - w) ** 2)) / (np.abs(w).max() or 1.0)))
        mant, bexp = quantize_bias(b * vth * (1 << VTH_SHIFT), name, limits, out)
        pops.append(FixedPopulation(vth=vth, du=DECAY_UNITY - 1,
                                    dv=quantize_leak(net.beta_lif, name, limits, out),
                                    bias_mant=mant, bias_exp=bexp, weight_exp=exps,
                                    groups=sizes))
        weights.append(wq)
    core = FixedCore(input_scale=float(first.vth[0]), input_max=input_max, populations=pops,
                     weights=weights)
    return Quantized(core=core, violations=out, zeroed_fraction=zeroed, weight_rmse=rmse)
