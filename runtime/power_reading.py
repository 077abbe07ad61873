"""Where the governor's energy readings come from: the energy model (default) or a board
power trace replayed on the mission clock.

By default the executive books every chunk with the energy model's estimate from its
measured spikes (``cmos45-horowitz2014``). With a ``TraceReading`` it books what a power
sensor on the compute rail read instead: a trace (``t_s`` and ``power_w`` in W above
the board's idle, or cumulative ``energy_j``; ``hardware.power_sensors.ReplaySensor``
reads and checks it) is laid on the mission clock from t = 0 and repeated over its span
``S = t_last - t_first``, and a chunk planned at mission time ``t`` books

    E = integral of P over [t, t + dt)        (J; ``dt`` the control period)

the rail's energy over the planning tick, the slot in which a chunk must be computed.
Safe-mode steps compute nothing and stay booked at the governor's ``safe_power_w``. The
governor's estimate of a point's chunk energy is ``max(predicted, recent readings)``
(``runtime.governor``), so a rail that draws more than the model said raises it from the
first reading on, and the budget's windows are accounted in what the sensor read.

A replayed trace does not answer the governor's choices (it is a recording): it tests
how the governor acts on a reading that departs from its model, reproducibly, with the
virtual clock as with the real one.
"""

from __future__ import annotations

import math
from pathlib import Path

from hardware.power_sensors import ReplaySensor, integrate


class TraceReading:
    """Chunk energies from a board power trace (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.trace = ReplaySensor(path)
        self.source = self.trace.source
        self.t0 = float(self.trace.times[0])
        self.span_s = float(self.trace.times[-1]) - self.t0

    def _energy(self, a: float, b: float) -> float:
        """J in the trace between offsets ``a <= b`` from its start, within one span."""
        return integrate(self.trace, self.t0 + a, self.t0 + b)

    def chunk_j(self, t_s: float, dt_s: float) -> float:
        """J the rail drew over mission time [t_s, t_s + dt_s), the trace repeated."""
        if dt_s <= 0:
            return 0.0
        whole = self._energy(0.0, self.span_s)
        a, b = t_s, t_s + dt_s
        laps_a, laps_b = math.floor(a / self.span_s), math.floor(b / self.span_s)
        ra, rb = a - laps_a * self.span_s, b - laps_b * self.span_s
        energy = (laps_b - laps_a) * whole + self._energy(0.0, rb) - self._energy(0.0, ra)
        return max(0.0, energy)
