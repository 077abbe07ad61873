"""Energy models: named, versioned profiles with their sources.

Every figure computed here is labelled with the profile's name; measured figures (from
sensors) carry the label ``sensor`` instead.

``cmos45-horowitz2014`` (Horowitz, ISSCC 2014, 45 nm): fp32 MAC 4.6 pJ, fp32 add (AC)
0.9 pJ. Spiking network per inference:
    E_snn = 4.6 pJ * (MACs of analog layers) + 0.9 pJ * sum_l (rate_l * T * synops_l)
where ``synops_l`` counts the synapses fanning out of spiking population ``l`` (every
one is an accumulate when its source neuron fires) and ``rate_l`` is spikes per neuron
per micro-step. ANN: E_ann = 4.6 pJ * MACs.

Further profiles (``loihi1-davies2018``, ``cpu-board``) come with the power-profiling
issue. ``Layout`` counts the operations of a denoiser per action chunk (K evaluations):
the trainer (from its config) and the runtime (from an image) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

PJ = 1e-12


@dataclass(frozen=True)
class Cmos45:
    name: str = "cmos45-horowitz2014"
    source: str = "Horowitz, ISSCC 2014, 45 nm: fp32 MAC 4.6 pJ, fp32 add 0.9 pJ"
    mac_pj: float = 4.6
    ac_pj: float = 0.9

    def snn_joules(self, analog_macs: float, spiking_synops: list[float], rates: list[float],
                   micro_steps: int) -> float:
        acs = sum(r * micro_steps * s for r, s in zip(rates, spiking_synops, strict=True))
        return (self.mac_pj * analog_macs + self.ac_pj * acs) * PJ

    def ann_joules(self, macs: float) -> float:
        return self.mac_pj * macs * PJ


CMOS45 = Cmos45()


@dataclass(frozen=True)
class Layout:
    """Sizes that fix a denoiser's operation counts: ``widths`` of the hidden layers (LIF
    populations in the SNN), ``action_size`` = chunk x act_dim, ``micro_steps`` T."""

    obs_dim: int
    obs_hidden: int
    widths: tuple[int, ...]
    action_size: int
    micro_steps: int
    sdli: bool
    state_readout: bool = False

    def obs_macs(self, sdli: bool) -> int:
        """Once-per-chunk MACs on the state: encoder, the state readout (folded onto the
        encoder's hidden layer) and the SDLI latency map, where present."""
        macs = self.obs_dim * self.obs_hidden + self.obs_hidden * self.widths[0]
        if self.state_readout:
            macs += self.obs_hidden * self.action_size
        return macs + (self.obs_dim * self.widths[0] if sdli else 0)

    def analog_macs(self, evaluations: int) -> int:
        """Analog MACs per chunk of the SNN: state encoding once, then per evaluation the
        input layer ``W_in x_k`` (constant over micro-steps) and the SDLI gate multiply."""
        per_eval = self.action_size * self.widths[0]
        if self.sdli:
            per_eval += self.widths[0] * self.micro_steps
        return self.obs_macs(self.sdli) + evaluations * per_eval

    def fan_out(self) -> list[int]:
        """Synapses leaving one neuron of each population (next layer, or the readout)."""
        return [*self.widths[1:], self.action_size]

    def synops(self, evaluations: int) -> list[float]:
        """Per population and chunk: neurons x fan-out x evaluations (accumulates at rate 1)."""
        return [evaluations * n * f for n, f in zip(self.widths, self.fan_out(), strict=True)]

    def ann_macs(self, evaluations: int) -> int:
        """MACs per chunk of the ReLU twin of this layout (no SDLI)."""
        dims = [self.action_size, *self.widths, self.action_size]
        per_eval = sum(a * b for a, b in zip(dims, dims[1:], strict=False))
        return self.obs_macs(sdli=False) + evaluations * per_eval
