"""Operation counts and energy of a policy per action chunk (K denoising evaluations).

Counting lives in ``hardware.energy.Layout`` (shared with the runtime): per chunk, once,
the observation encoder (and, with SDLI, the latency map) run on the state: analog MACs.
Per denoising evaluation: the analog input layer ``W_in x_k`` (its current is constant
over the T micro-steps, so it is computed once); the step embedding is a folded bias table
(no ops). Spiking: every spike of population ``l`` drives its fan-out (the next layer's
width, or the readout's) once, so rate x T x synops_l accumulates happen per evaluation.
The ANN twin computes every layer densely: MACs.
"""

from __future__ import annotations

from hardware.energy import CMOS45, Layout
from policies.config import PolicyConfig


def layout(cfg: PolicyConfig) -> Layout:
    return Layout(obs_dim=cfg.obs_dim, obs_hidden=cfg.obs_hidden, widths=tuple(cfg.hidden),
                  action_size=cfg.action_size, micro_steps=cfg.micro_steps, sdli=cfg.sdli,
                  state_readout=cfg.state_readout)


def energy_per_chunk(cfg: PolicyConfig, rates: list[float],
                     evaluations: int | None = None) -> dict[str, float | str]:
    """cmos45-horowitz2014 energy per chunk (J) of this policy and of its ANN twin, with
    the operation counts behind them. ``rates``: measured spikes per neuron per micro-step,
    per population (ignored for an ANN policy)."""
    k = evaluations or cfg.diffusion_steps
    lay = layout(cfg)
    ann_macs = lay.ann_macs(k)
    ann_j = CMOS45.ann_joules(ann_macs)
    out: dict[str, float | str] = {"model": CMOS45.name, "ann_macs_per_chunk": ann_macs,
                                   "ann_j_per_chunk": ann_j}
    if not cfg.spiking:
        out.update(policy_j_per_chunk=ann_j, energy_ratio_vs_ann=1.0)
        return out
    synops = lay.synops(k)
    snn_j = CMOS45.snn_joules(lay.analog_macs(k), synops, rates, cfg.micro_steps)
    acs = sum(r * cfg.micro_steps * s for r, s in zip(rates, synops, strict=True))
    out.update(analog_macs_per_chunk=lay.analog_macs(k), synops_per_chunk=acs,
               policy_j_per_chunk=snn_j, energy_ratio_vs_ann=snn_j / ann_j)
    return out
