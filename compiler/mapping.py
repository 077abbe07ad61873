"""Core mapping and the structural limit checks of a Loihi 2 graph.

Each LIF process (a population, or one group of it) is placed on
``ceil(neurons / compartments_per_core)`` cores of its own; a core's input axons are the
source population's neurons, so a Dense layer needs ``fan_in <= fan_in_per_core`` (the
graded first-layer input arrives one axon per neuron). The chip holds
``cores_per_chip`` cores. Synaptic delays are not used (Dense delays are compensated in
the schedule), so they are always within ``max_delay``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.quantize import Violation, population_name
from hardware.loihi2 import Loihi2Limits


@dataclass
class LayerMap:
    name: str
    neurons: int
    fan_in: int
    groups: list[int]
    cores: int


def map_cores(widths: list[int], groups: list[list[int]],
              limits: Loihi2Limits) -> tuple[list[LayerMap], list[Violation]]:
    """Cores per population and every structural violation (fan-in, chip size)."""
    maps, out = [], []
    for i, (n, sizes) in enumerate(zip(widths, groups, strict=True)):
        name = population_name(i)
        fan_in = 1 if i == 0 else widths[i - 1]
        cores = sum(math.ceil(s / limits.compartments_per_core) for s in sizes)
        if fan_in > limits.fan_in_per_core:
            out.append(Violation(f"dense{i} -> {name}", "fan-in axons per core", str(fan_in),
                                 f"<= {limits.fan_in_per_core}"))
        maps.append(LayerMap(name=name, neurons=n, fan_in=fan_in, groups=list(sizes),
                             cores=cores))
    total = sum(m.cores for m in maps)
    if total > limits.cores_per_chip:
        out.append(Violation("network", "cores", str(total), f"<= {limits.cores_per_chip} "
                             f"per {limits.name} chip"))
    return maps, out
