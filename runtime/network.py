"""The deployable denoiser in numpy: folded float parameters and their reference semantics.

This is the contract between the compiler (which folds a trained policy into a
``FoldedNet``) and the runtime (which runs it without torch). All thresholds, the
observation normaliser and the step embedding are already folded in:

    s      = raw observation (the min-max normaliser is folded into ``enc_w1`` and
             ``sdli_w``: s_norm = diag(2 / span) s + (-2 lo / span - 1), constant dims 0)
    c      = enc_w2 relu(enc_w1 s + enc_b1) + enc_b2            state current  (B, H1)
    g_t    = (1 - beta) + beta sigmoid(+-(t - tau) / sigma),
             tau = 1 + (T - 2) sigmoid(sdli_w s + sdli_b)        SDLI gate (1 without SDLI)
    I_1(t) = w_in x_k + bias_table[k] + c * g_t                  first-layer current
    v_l(t) = beta_lif v_l(t-1) + I_l(t);  s_l(t) = [v_l(t) > 1];  v_l(t) <- 0 where s_l(t)
    I_{l+1}(t) = hidden_w[l] s_l(t) + hidden_b[l]
    eps    = readout_w (sum_t s_L(t)) / T + readout_b [+ state_w relu(enc_w1 s + enc_b1)]

The bracketed state readout exists for policies trained with one (``W_s c`` in
``policies/denoiser.py``): ``W_s (enc_w2 h + enc_b2)`` folds into ``state_w = W_s enc_w2``
on the encoder's hidden layer h and ``W_s enc_b2`` added to ``readout_b``.

Every population's threshold is 1: the learnable per-channel thresholds theta_l were folded
by dividing the rows of the weights and biases feeding population l by theta_l (exact for
zero reset: v and I scale together). Shapes follow ``y = W x`` (out, in).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

_SCALARS = ("spiking", "beta_lif", "micro_steps", "sdli_sigma", "sdli_beta", "sdli_invert")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


@dataclass
class FoldedNet:
    """Float parameters of the spiking denoiser after folding (see the module docstring)."""

    enc_w1: np.ndarray
    enc_b1: np.ndarray
    enc_w2: np.ndarray
    enc_b2: np.ndarray
    w_in: np.ndarray
    bias_table: np.ndarray  # (K, H1): input bias + folded step embedding per step k
    hidden_w: list[np.ndarray]
    hidden_b: list[np.ndarray]
    readout_w: np.ndarray
    readout_b: np.ndarray
    beta_lif: float
    micro_steps: int
    sdli_w: np.ndarray | None = None
    sdli_b: np.ndarray | None = None
    sdli_sigma: float = 0.9
    sdli_beta: float = 0.0
    sdli_invert: bool = False
    spiking: bool = True
    state_w: np.ndarray | None = None  # (A, obs_hidden): the folded state readout, if any

    @property
    def widths(self) -> list[int]:
        """Neurons per LIF population."""
        return [self.w_in.shape[0]] + [w.shape[0] for w in self.hidden_w]

    @property
    def action_size(self) -> int:
        return int(self.w_in.shape[1])

    # ---- reference semantics (float64) ---------------------------------------------------
    def gates(self, s: np.ndarray) -> np.ndarray:
        """SDLI gate per micro-step, (T, B, H1); ones without SDLI."""
        t_steps = self.micro_steps
        if self.sdli_w is None:
            return np.ones((t_steps, s.shape[0], self.w_in.shape[0]))
        tau = 1.0 + (t_steps - 2) * sigmoid(s @ self.sdli_w.T + self.sdli_b)
        t = np.arange(t_steps, dtype=float).reshape(-1, 1, 1)
        z = (tau - t) if self.sdli_invert else (t - tau)
        return (1.0 - self.sdli_beta) + self.sdli_beta * sigmoid(z / self.sdli_sigma)

    def encoder_hidden(self, s: np.ndarray) -> np.ndarray:
        """h = relu(enc_w1 s + enc_b1) for raw observations ``s`` (B, obs_dim)."""
        return np.maximum(s @ self.enc_w1.T + self.enc_b1, 0.0)

    def state_current(self, s: np.ndarray) -> np.ndarray:
        """c * g_t for raw observations ``s`` (B, obs_dim): (T, B, H1)."""
        return (self.encoder_hidden(s) @ self.enc_w2.T + self.enc_b2)[None] * self.gates(s)

    def output_bias(self, s: np.ndarray) -> np.ndarray:
        """The readout's bias for each observation (B, A): ``readout_b``, plus the state
        readout ``state_w h(s)`` where the network has one (once per chunk)."""
        if self.state_w is None:
            return np.broadcast_to(self.readout_b, (s.shape[0], self.action_size))
        return self.readout_b + self.encoder_hidden(s) @ self.state_w.T

    def first_layer_current(self, x: np.ndarray, k: np.ndarray, s: np.ndarray,
                            state: np.ndarray | None = None) -> np.ndarray:
        """I_1(t) for a batch: ``x`` (B, A), ``k`` (B,) step indices, ``s`` (B, obs_dim);
        ``state``: ``state_current(s)`` if already computed (it is the same for every
        denoising step of a chunk)."""
        base = x @ self.w_in.T + self.bias_table[np.asarray(k)]
        return base[None] + (self.state_current(s) if state is None else state)

    def spike_counts(self, current: np.ndarray) -> list[np.ndarray]:
        """Run the LIF populations on first-layer currents (T, B, H1); spikes summed over
        micro-steps, per population."""
        v = [np.zeros((current.shape[1], n)) for n in self.widths]
        counts = [np.zeros_like(m) for m in v]
        for t in range(current.shape[0]):
            cur = current[t]
            for i in range(len(v)):
                v[i] = self.beta_lif * v[i] + cur
                spk = v[i] > 1.0
                v[i][spk] = 0.0
                counts[i] += spk
                if i < len(self.hidden_w):
                    cur = spk @ self.hidden_w[i].T + self.hidden_b[i]
        return counts

    def readout(self, last_counts: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """eps = W_out counts / T + bias, from the last population's spike counts (B, H_L)
        and ``bias = output_bias(s)`` (B, A), the same for every denoising step of a chunk."""
        return last_counts @ self.readout_w.T / self.micro_steps + bias

    def eps_from_current(self, current: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The network's output (B, A) from its first-layer currents ``current`` (T, B, H1)
        and ``bias = output_bias(s)``: T micro-steps of the LIF populations, or for the ANN
        twin ``h_1 = relu(I_1)``, ``h_{l+1} = relu(W_l h_l + b_l)``, ``W_out h_L + b``."""
        if self.spiking:
            return self.readout(self.spike_counts(current)[-1], bias)
        h = np.maximum(current[0], 0.0)
        for w, b in zip(self.hidden_w, self.hidden_b, strict=True):
            h = np.maximum(h @ w.T + b, 0.0)
        return h @ self.readout_w.T + bias

    def eps(self, x: np.ndarray, k: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Predicted noise (B, A): the whole denoising evaluation (``eps_from_current``)."""
        return self.eps_from_current(self.first_layer_current(x, k, s), self.output_bias(s))

    # ---- (de)serialisation for the image -------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, float | int | bool]]:
        """Arrays (for a weights section) and scalars (for the manifest)."""
        arrays: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SCALARS or value is None:
                continue
            if isinstance(value, list):
                for i, a in enumerate(value):
                    arrays[f"{f.name}.{i}"] = np.asarray(a, np.float64)
            else:
                arrays[f.name] = np.asarray(value, np.float64)
        scalars = {name: getattr(self, name) for name in _SCALARS}
        return arrays, scalars

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], scalars: dict) -> FoldedNet:
        def listed(name: str) -> list[np.ndarray]:
            n = sum(1 for key in arrays if key.startswith(name + "."))
            return [arrays[f"{name}.{i}"] for i in range(n)]

        kw = {f.name: arrays.get(f.name) for f in fields(cls)
              if f.name not in _SCALARS and f.name not in ("hidden_w", "hidden_b")}
        return cls(hidden_w=listed("hidden_w"), hidden_b=listed("hidden_b"),
                   beta_lif=float(scalars["beta_lif"]), micro_steps=int(scalars["micro_steps"]),
                   sdli_sigma=float(scalars["sdli_sigma"]), sdli_beta=float(scalars["sdli_beta"]),
                   sdli_invert=bool(scalars["sdli_invert"]), spiking=bool(scalars["spiking"]),
                   **kw)
