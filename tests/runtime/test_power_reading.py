"""The governor's reading from a board power trace replayed on the mission clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware.power_sensors import SensorError
from runtime.flight import FlightConfig
from runtime.power_reading import TraceReading


def _trace(path: Path, rows: list[tuple[float, float]], col: str = "power_w") -> Path:
    path.write_text(f"t_s,{col}\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def test_a_constant_rail_books_power_times_the_tick_wherever_it_falls(tmp_path: Path) -> None:
    r = TraceReading(_trace(tmp_path / "c.csv", [(0.0, 2e-5), (1.0, 2e-5)]))
    assert r.source == "replay:c.csv"
    for t in (0.0, 0.3, 0.98, 1.0, 7.99, 123.456):  # across the trace's end and its laps
        assert r.chunk_j(t, 0.05) == pytest.approx(1e-6, rel=1e-9)


def test_the_trace_repeats_and_its_shape_is_kept(tmp_path: Path) -> None:
    # 1 W for the first second, 3 W for the second one (a step at 1 s, power samples)
    r = TraceReading(_trace(tmp_path / "s.csv", [(5.0, 1.0), (6.0, 1.0), (6.0001, 3.0),
                                                (7.0, 3.0)]))
    assert r.span_s == pytest.approx(2.0)
    assert r.chunk_j(0.2, 0.1) == pytest.approx(0.1)
    assert r.chunk_j(1.5, 0.1) == pytest.approx(0.3)
    assert r.chunk_j(2.2, 0.1) == pytest.approx(0.1)  # the second lap starts over
    assert r.chunk_j(1.95, 0.1) == pytest.approx(0.05 * 3 + 0.05 * 1, rel=1e-3)  # the wrap
    assert r.chunk_j(0.0, 4.0) == pytest.approx(2 * (1.0 + 3.0), rel=1e-3)


def test_a_cumulative_energy_trace_reads_the_same(tmp_path: Path) -> None:
    r = TraceReading(_trace(tmp_path / "e.csv", [(0.0, 0.0), (1.0, 2.0), (2.0, 2.5)],
                            col="energy_j"))
    assert r.chunk_j(0.5, 0.1) == pytest.approx(0.2)
    assert r.chunk_j(1.5, 0.1) == pytest.approx(0.05)


def test_a_bad_trace_fails_when_the_flight_is_configured(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,volts\n0,1\n1,2\n")
    with pytest.raises(SensorError, match="needs columns t_s and energy_j or power_w"):
        FlightConfig(power_trace=bad)
    with pytest.raises(SensorError, match="no such trace file"):
        FlightConfig(power_trace=tmp_path / "missing.csv")
