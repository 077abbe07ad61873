"""Energy models: named, versioned profiles with their sources (DESIGN.md §7).

Every figure computed here is labelled with the profile's name; measured figures (from
sensors) carry the label ``sensor`` instead.

``cmos45-horowitz2014`` (Horowitz, ISSCC 2014, 45 nm): fp32 MAC 4.6 pJ, fp32 add (AC)
0.9 pJ. Spiking network per inference:
    E_snn = 4.6 pJ * (MACs of analog layers) + 0.9 pJ * sum_l (rate_l * T * synops_l)
where ``synops_l`` counts the synapses fanning out of spiking population ``l`` (every
one is an accumulate when its source neuron fires) and ``rate_l`` is spikes per neuron
per micro-step. ANN: E_ann = 4.6 pJ * MACs.

Further profiles (``loihi1-davies2018``, ``cpu-board``) come with the power-profiling
issue.
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
