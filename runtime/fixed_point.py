"""Loihi 2 fixed-point form of the spiking core and its bit-accurate numpy reference.

Arithmetic of Lava's ``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc`` and the bit-accurate
``Dense`` (lava-nc 0.10.0), per population l and micro-step t, all integers:

    a_1(t) = clip(rint(I_1(t) * input_scale), -input_max, input_max)   graded input
    a_l(t) = (W_l s_{l-1}(t)) << exp_l                                   l >= 2
    u <- decay(u, du + 1) + (a << 6), wrapped to 24-bit signed
    v <- clip(decay(v, dv) + u + (bias_mant << bias_exp), -(2^23 - 1), 2^23 - 1)
    s  = v > (vth << 6);  v <- 0 where s
    decay(x, d) = sign(x) * ((|x| * (4096 - d)) >> 12)     (truncation toward zero)

Weights are 8-bit mantissas of mixed sign (even values in [-256, 254]) with one exponent
per Dense process (``exp >= 0`` here, so the shift is exact in every backend). Lava shares
``vth``, ``du`` and ``dv`` across a LIF process, so a population may be split into
*groups* (consecutive neurons), each its own LIF process with its own ``vth`` and its own
incoming Dense with its own exponent: here ``vth`` and the exponents are stored per
neuron, constant within a group. With du = 4095
the current forgets itself each step (u = a << 6), so v <- beta v + I as in snnTorch's
``Leaky`` with beta = 1 - dv / 4096. The readout stays on the host in float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6
VTH_SHIFT = 6
UV_MAX = 1 << 23  # u and v are 24-bit signed


def decay(x: np.ndarray, d: int) -> np.ndarray:
    """Lava's truncating decay: sign(x) * ((|x| * (4096 - d)) >> 12)."""
    y = x.astype(np.int64) * (DECAY_UNITY - d)
    return np.sign(y) * (np.abs(y) >> DECAY_SHIFT)


def wrap24(u: np.ndarray) -> np.ndarray:
    """Lava's 24-bit wrap of the current (as written in ``subthr_dynamics``)."""
    w = np.where(u > UV_MAX, u - 2 * UV_MAX, u)
    return np.where(w <= -UV_MAX, u + 2 * UV_MAX, w)


@dataclass
class FixedPopulation:
    """One LIF population: ``du``, ``dv`` shared; ``vth`` and the exponent ``weight_exp``
    of the incoming weights per neuron, constant within each group of ``groups`` (sizes of
    consecutive neuron groups); per-neuron bias."""

    vth: np.ndarray
    du: int
    dv: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    weight_exp: np.ndarray
    groups: list[int]

    @staticmethod
    def slices(sizes: list[int]) -> list[slice]:
        """Index ranges of consecutive groups of the given sizes."""
        edges = np.cumsum([0, *sizes])
        return [slice(int(a), int(b)) for a, b in zip(edges, edges[1:], strict=False)]

    def group_slices(self) -> list[slice]:
        return self.slices(self.groups)

    @property
    def bias(self) -> np.ndarray:
        return self.bias_mant.astype(np.int64) << self.bias_exp.astype(np.int64)


@dataclass
class FixedCore:
    """Quantised spiking core: populations, integer weights between them, input scaling."""

    input_scale: float
    input_max: int
    populations: list[FixedPopulation]
    weights: list[np.ndarray]  # weights[i]: population i -> i + 1, (out, in)

    def quantize_input(self, current: np.ndarray) -> np.ndarray:
        """Graded first-layer input a_1 = clip(rint(I_1 * input_scale)) (int64)."""
        a = np.rint(np.asarray(current, np.float64) * self.input_scale)
        return np.clip(a, -self.input_max, self.input_max).astype(np.int64)

    def run(self, a_in: np.ndarray) -> list[np.ndarray]:
        """Spike rasters (T, B, H_l) per population for graded inputs ``a_in`` (T, B, H1),
        starting from zero state (one denoising evaluation per batch row)."""
        steps, batch = a_in.shape[:2]
        u = [np.zeros((batch, len(p.bias_mant)), np.int64) for p in self.populations]
        v = [np.zeros_like(x) for x in u]
        rasters = [np.zeros((steps, *x.shape), bool) for x in u]
        w_t = [w.T.astype(np.float64) for w in self.weights]
        for t in range(steps):
            a = a_in[t].astype(np.int64)
            for i, pop in enumerate(self.populations):
                u[i] = wrap24(decay(u[i], pop.du + 1) + (a << ACT_SHIFT))
                v[i] = np.clip(decay(v[i], pop.dv) + u[i] + pop.bias, -UV_MAX + 1, UV_MAX - 1)
                spk = v[i] > (pop.vth.astype(np.int64) << VTH_SHIFT)
                v[i][spk] = 0
                rasters[i][t] = spk
                if i < len(self.weights):  # float64 product of 0/1 and 8-bit integers:
                    nxt = self.populations[i + 1]  # exact (integer sums far below 2^53)
                    a = (spk.astype(np.float64) @ w_t[i]).astype(np.int64) \
                        << nxt.weight_exp.astype(np.int64)
        return rasters

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays: dict[str, np.ndarray] = {}
        for i, p in enumerate(self.populations):
            for name in ("vth", "bias_mant", "bias_exp", "weight_exp"):
                arrays[f"{name}.{i}"] = getattr(p, name).astype(np.int32)
        for i, w in enumerate(self.weights):
            arrays[f"weights.{i}"] = w.astype(np.int16)  # 8-bit mantissas
        scalars = {"input_scale": self.input_scale, "input_max": self.input_max,
                   "populations": [{"du": p.du, "dv": p.dv, "groups": list(p.groups)}
                                   for p in self.populations]}
        return arrays, scalars

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], scalars: dict) -> FixedCore:
        pops = [FixedPopulation(du=int(p["du"]), dv=int(p["dv"]),
                                groups=[int(g) for g in p["groups"]],
                                **{name: arrays[f"{name}.{i}"] for name in
                                   ("vth", "bias_mant", "bias_exp", "weight_exp")})
                for i, p in enumerate(scalars["populations"])]
        weights = [arrays[f"weights.{i}"] for i in range(len(pops) - 1)]
        return cls(input_scale=float(scalars["input_scale"]), input_max=int(scalars["input_max"]),
                   populations=pops, weights=weights)
