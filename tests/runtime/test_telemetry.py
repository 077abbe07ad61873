"""Telemetry: JSON lines that round-trip, a bounded ring buffer, numpy values as plain JSON,
a torn last line (crash) skipped, a corrupt line named by number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware.errors import SpikeflightError
from runtime.telemetry import Telemetry, TelemetryError, read_telemetry


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.5
        return self.t


def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tel.jsonl"
    with Telemetry(path, clock=Ticks()) as tel:
        tel.channel("latency_ms", 3.25)
        tel.channel("energy_j", 1.5e-6, source="cmos45-horowitz2014")
        tel.event("fallback", severity="warning", backend="lava", to="onnx-fixed",
                  reason="Loihi link lost")
        tel.channel("governor_state", "degraded")
        assert path.read_bytes().endswith(b"\n")  # durable before return: already there
        in_memory = tel.records()
    on_disk = read_telemetry(path)
    assert on_disk == in_memory and len(on_disk) == 4
    assert on_disk[0] == {"t": 0.5, "kind": "channel", "name": "latency_ms", "value": 3.25}
    assert on_disk[2] == {"t": 1.5, "kind": "event", "name": "fallback", "severity": "warning",
                          "backend": "lava", "to": "onnx-fixed", "reason": "Loihi link lost"}
    assert all(json.loads(line) for line in path.read_text().splitlines())  # one per line
    with Telemetry(path, clock=Ticks()) as tel:  # reopening appends
        tel.event("episode_end", seed=3)
    assert [r["name"] for r in read_telemetry(path)][-2:] == ["governor_state", "episode_end"]


def test_the_ring_buffer_keeps_the_last_n_and_the_file_keeps_all(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Telemetry(path, ring_size=3) as tel:
        for i in range(10):
            tel.channel("energy_j", float(i))
        assert [r["value"] for r in tel.records()] == [7.0, 8.0, 9.0]
        assert tel.latest("energy_j")["value"] == 9.0 and tel.latest("latency_ms") is None
    assert [r["value"] for r in read_telemetry(path)] == [float(i) for i in range(10)]


def test_numpy_values_serialise_as_plain_numbers_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Telemetry(path) as tel:
        tel.channel("firing_rates", np.array([0.1, 0.25], dtype=np.float32),
                    layers=np.int64(2), ok=np.bool_(True), grid=np.arange(4).reshape(2, 2),
                    where=tmp_path, nested={"n": np.uint8(7), "xs": (np.float64(1.5),)})
        rec = tel.records()[0]
    assert read_telemetry(path)[0] == rec
    assert rec["value"] == pytest.approx([0.1, 0.25]) and type(rec["value"][0]) is float
    assert rec["layers"] == 2 and type(rec["layers"]) is int and rec["ok"] is True
    assert rec["grid"] == [[0, 1], [2, 3]] and rec["where"] == str(tmp_path)
    assert rec["nested"] == {"n": 7, "xs": [1.5]}


def test_a_truncated_last_line_is_skipped_and_cut_off_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Telemetry(path) as tel:
        tel.channel("latency_ms", 1.0)
        tel.channel("latency_ms", 2.0)
    data = path.read_bytes()
    path.write_bytes(data + b'{"t": 3.0, "kind": "chan')  # crash in the middle of a write
    assert [r["value"] for r in read_telemetry(path)] == [1.0, 2.0]
    with Telemetry(path) as tel:  # the torn tail is cut off before appending
        tel.channel("latency_ms", 3.0)
        assert tel.events("telemetry_recovered")[0]["dropped_bytes"] == 24
    records = read_telemetry(path)
    assert [r["name"] for r in records] == ["latency_ms", "latency_ms", "telemetry_recovered",
                                           "latency_ms"]
    assert path.read_bytes().startswith(data)


def test_a_corrupt_middle_line_gives_a_one_line_error_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with Telemetry(path) as tel:
        for i in range(4):
            tel.channel("energy_j", float(i))
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:10] + b"#" + lines[2][11:]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(TelemetryError) as err:
        read_telemetry(path)
    assert isinstance(err.value, SpikeflightError)
    msg = str(err.value)
    assert msg.startswith(f"{path}:3: corrupt telemetry record") and "\n" not in msg
    path.write_bytes(b'{"t": 1, "kind": "channel", "name": "x", "value": 1}\n[1, 2]\n')
    with pytest.raises(TelemetryError, match=r":2: not a telemetry record"):
        read_telemetry(path)
    with pytest.raises(TelemetryError, match="cannot read telemetry"):
        read_telemetry(tmp_path / "missing.jsonl")


def test_events_filter_by_name_and_memory_only_telemetry() -> None:
    with Telemetry(None) as tel:
        tel.event("deadline_miss", severity="warning", chunk=1, elapsed_ms=40.0, deadline_ms=20.0)
        tel.channel("latency_ms", 40.0)
        tel.event("safe_mode", severity="warning", active=True)
        tel.event("deadline_miss", severity="warning", chunk=2, elapsed_ms=41.0, deadline_ms=20.0)
        assert [e["chunk"] for e in tel.events("deadline_miss")] == [1, 2]
        assert [e["name"] for e in tel.events()] == ["deadline_miss", "safe_mode",
                                                     "deadline_miss"]
        assert tel.events("fallback") == []
    assert len(tel.records()) == 4  # still readable after close


def test_misuse_gives_one_line_errors(tmp_path: Path) -> None:
    tel = Telemetry(None)
    with pytest.raises(TelemetryError, match="severity must be one of"):
        tel.event("x", severity="loud")
    with pytest.raises(TelemetryError, match="field 't' is reserved"):
        tel.channel("x", 1.0, t=3)
    tel.close()
    with pytest.raises(TelemetryError, match="after close"):
        tel.channel("x", 1.0)
    with pytest.raises(TelemetryError, match="ring_size"):
        Telemetry(None, ring_size=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TelemetryError, match="cannot open telemetry file") as err:
        Telemetry(blocker / "t.jsonl")
    assert "\n" not in str(err.value)
