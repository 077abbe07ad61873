"""Operation counts of a policy per action chunk (K denoising evaluations).

Per chunk, once: the observation encoder (and, with SDLI, the latency map) run on the
state: analog MACs. Per denoising evaluation: the analog input layer ``W_in x_k``
(its current is constant over the T micro-steps, so it is computed once); the step
embedding is a folded bias table (no ops). Spiking: every spike of population ``l``
drives its fan-out (the next layer's width, or the readout's) once: ``synops_l`` is
that fan-out times the population size, and rate x T x synops_l accumulates happen per
evaluation. The ANN twin computes every layer densely: MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.energy import CMOS45
from policies.config import PolicyConfig


@dataclass
class ChunkOps:
    analog_macs: float  # per chunk
    spiking_synops: list[float]  # per chunk, per population, at rate 1 per micro-step
    neurons: list[int]  # per population
    micro_steps: int
    evaluations: int


def obs_macs(cfg: PolicyConfig, sdli: bool) -> int:
    """Once-per-chunk MACs on the state: encoder, and the SDLI latency map if present."""
    macs = cfg.obs_dim * cfg.obs_hidden + cfg.obs_hidden * cfg.hidden[0]
    if sdli:
        macs += cfg.obs_dim * cfg.hidden[0]
    return macs


def snn_chunk_ops(cfg: PolicyConfig, evaluations: int | None = None) -> ChunkOps:
    k = evaluations or cfg.diffusion_steps
    per_eval_analog = cfg.action_size * cfg.hidden[0]
    if cfg.sdli:
        per_eval_analog += cfg.hidden[0] * cfg.micro_steps  # gate multiply c * g_t
    fanouts = list(cfg.hidden[1:]) + [cfg.action_size]
    synops = [k * n * f for n, f in zip(cfg.hidden, fanouts, strict=True)]
    return ChunkOps(analog_macs=obs_macs(cfg, cfg.sdli) + k * per_eval_analog,
                    spiking_synops=synops, neurons=list(cfg.hidden),
                    micro_steps=cfg.micro_steps, evaluations=k)


def ann_chunk_macs(cfg: PolicyConfig, evaluations: int | None = None) -> int:
    """MACs per chunk of the ReLU twin of ``cfg``'s layout (no SDLI)."""
    k = evaluations or cfg.diffusion_steps
    dims = [cfg.action_size, *cfg.hidden, cfg.action_size]
    per_eval = sum(a * b for a, b in zip(dims, dims[1:], strict=False))
    return obs_macs(cfg, sdli=False) + k * per_eval


def energy_per_chunk(cfg: PolicyConfig, rates: list[float],
                     evaluations: int | None = None) -> dict[str, float | str]:
    """cmos45-horowitz2014 energy per chunk (J) of this policy and of its ANN twin, with
    the operation counts behind them. ``rates``: measured spikes per neuron per micro-step,
    per population (ignored for an ANN policy)."""
    ann_macs = ann_chunk_macs(cfg, evaluations)
    ann_j = CMOS45.ann_joules(ann_macs)
    out: dict[str, float | str] = {"model": CMOS45.name, "ann_macs_per_chunk": ann_macs,
                                   "ann_j_per_chunk": ann_j}
    if not cfg.spiking:
        out.update(policy_j_per_chunk=ann_j, energy_ratio_vs_ann=1.0)
        return out
    ops = snn_chunk_ops(cfg, evaluations)
    snn_j = CMOS45.snn_joules(ops.analog_macs, ops.spiking_synops, rates, ops.micro_steps)
    synops = sum(r * ops.micro_steps * s for r, s in zip(rates, ops.spiking_synops,
                                                         strict=True))
    out.update(analog_macs_per_chunk=ops.analog_macs, synops_per_chunk=synops,
               policy_j_per_chunk=snn_j, energy_ratio_vs_ann=snn_j / ann_j)
    return out
