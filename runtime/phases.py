"""Per-phase accounting of one action chunk, for energy attribution.

Phases: ``encode`` (observation encoder and SDLI latency map: once per chunk),
``denoise[k]`` for each evaluated step k (input layer, SDLI gate multiply, and the spiking
core: synaptic events = spikes x fan-out, neuron updates = neurons x T), ``decode``
(un-normalising the chunk), ``world_model`` (the guard) and ``idle`` (the rest of the
chunk's control period). The backend computes encode and all steps in one call, so its
measured wall time is split across them in proportion to their operations (analog MACs
plus synaptic events); decode and the guard are timed directly.
"""

from __future__ import annotations

import numpy as np

from hardware.energy import Layout
from hardware.energy_models import PhaseCounts


def compute_phases(layout: Layout, ks: np.ndarray, step_spikes: np.ndarray | None,
                   plan_s: float, rows: int = 1) -> list[PhaseCounts]:
    """``encode`` and ``denoise[k]`` of one backend call of ``rows`` chunks (candidates);
    ``step_spikes`` (n, L) per step and population, summed over the rows (None: the ANN
    twin); ``plan_s`` the call's wall time. The dense work scales with the rows."""
    spiking = step_spikes is not None
    enc_macs = rows * float(layout.obs_macs(layout.sdli and spiking))
    one = rows * (layout.analog_macs(1) - layout.obs_macs(layout.sdli) if spiking
                  else layout.ann_macs(1) - layout.obs_macs(False))
    fan = np.asarray(layout.fan_out(), float)
    updates = rows * float(sum(layout.widths) * layout.micro_steps)
    steps = []
    for i, k in enumerate(ks):
        if spiking:
            syn = float(step_spikes[i] @ fan)
            steps.append(PhaseCounts(f"denoise[{int(k)}]", analog_macs=float(one), synops=syn,
                                     spikes=float(step_spikes[i].sum()),
                                     neuron_updates=updates))
        else:
            steps.append(PhaseCounts(f"denoise[{int(k)}]", ann_macs=float(one)))
    encode = PhaseCounts("encode", analog_macs=enc_macs) if spiking else \
        PhaseCounts("encode", ann_macs=enc_macs)
    work = [encode, *steps]
    ops = np.array([p.analog_macs + p.ann_macs + p.synops for p in work])
    shares = ops / ops.sum() if ops.sum() > 0 else np.full(len(work), 1 / len(work))
    for p, w in zip(work, shares, strict=True):
        p.seconds = float(plan_s * w)
    return work


def chunk_phases(work: list[PhaseCounts], decode_s: float, guard_s: float,
                 period_s: float) -> list[PhaseCounts]:
    """All phases of a chunk: ``work`` (from ``compute_phases``), then decode, the world
    model and the idle rest of the control period ``period_s``."""
    busy = sum(p.seconds for p in work) + decode_s + guard_s
    return [*work, PhaseCounts("decode", seconds=decode_s),
            PhaseCounts("world_model", seconds=guard_s),
            PhaseCounts("idle", seconds=max(period_s - busy, 0.0), compute=False)]
