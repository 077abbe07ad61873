"""Power sensors on fake sysfs trees and recorded traces; the sampler on a fake clock."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from hardware.errors import SpikeflightError
from hardware.power_sensors import (
    HwmonSensor,
    InaSensor,
    PowerSensor,
    RaplSensor,
    ReplaySensor,
    Sampler,
    SensorError,
    discover_hwmon,
    discover_rapl,
    integrate,
    open_sensor,
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")
    return path


def _zone(root: Path, rel: str, name: str, energy: int, max_range: int = 2**32 - 1) -> Path:
    d = root / "sys/class/powercap" / rel
    _write(d / "name", name)
    _write(d / "energy_uj", str(energy))
    _write(d / "max_energy_range_uj", str(max_range))
    return d


def _rapl_tree(root: Path) -> None:
    _zone(root, "intel-rapl:0", "package-0", 5_000_000)
    _zone(root, "intel-rapl:0/intel-rapl:0:0", "core", 2_000_000)
    _zone(root, "intel-rapl:0/intel-rapl:0:1", "dram", 1_000_000)
    _zone(root, "intel-rapl:1", "package-1", 7_000_000)
    _zone(root, "intel-rapl:1/intel-rapl:1:0", "core", 3_000_000)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    assert isinstance(exc.value, SpikeflightError)
    return msg


# ---- RAPL -----------------------------------------------------------------------------

def test_rapl_discovery_and_values(tmp_path: Path) -> None:
    _rapl_tree(tmp_path)
    zones = discover_rapl(tmp_path)
    assert [z.label for z in zones] == ["package-0", "package-0/core", "package-0/dram",
                                        "package-1", "package-1/core"]
    assert [z.top for z in zones] == [True, False, False, True, False]
    whole = open_sensor("rapl", tmp_path)
    assert whole.kind == "energy" and whole.source == "rapl:package-0+package-1"
    assert whole.read() == pytest.approx(12.0)
    dram = open_sensor("rapl:dram", tmp_path)  # unique bare name
    assert dram.source == "rapl:package-0/dram" and dram.read() == pytest.approx(1.0)
    assert open_sensor("rapl:intel-rapl:1:0", tmp_path).read() == pytest.approx(3.0)
    with pytest.raises(SensorError) as exc:
        open_sensor("rapl:core", tmp_path)  # two packages have a core zone
    assert "ambiguous" in _one_line(exc) and "package-1/core" in str(exc.value)


def test_rapl_flat_layout_as_in_real_sysfs(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    _zone(tmp_path, "intel-rapl:0:0", "core", 2)
    (tmp_path / "sys/class/powercap/intel-rapl").mkdir()  # the control type, not a zone
    assert [z.label for z in discover_rapl(tmp_path)] == ["package-0", "package-0/core"]


def test_rapl_counter_wraparound(tmp_path: Path) -> None:
    d = _zone(tmp_path, "intel-rapl:0", "package-0", 900_000, max_range=999_999)
    sensor = RaplSensor(discover_rapl(tmp_path))
    readings = []
    # range 1e6 uJ: 900k -> 400k wraps (+500k), -> 800k (+400k), -> 100k wraps (+300k)
    for raw in (900_000, 400_000, 800_000, 100_000):
        (d / "energy_uj").write_text(str(raw))
        readings.append(sensor.read())
    assert np.diff(readings) == pytest.approx([0.5, 0.4, 0.3])
    assert readings[-1] - readings[0] == pytest.approx(1.2)


def test_no_rapl_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SensorError) as exc:
        open_sensor("rapl", tmp_path)
    msg = _one_line(exc)
    assert f"no RAPL zones under {tmp_path}/sys/class/powercap" in msg
    assert "--allow-model" in msg and "hwmon" in msg


def test_missing_file_names_it(tmp_path: Path) -> None:
    d = _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (d / "max_energy_range_uj").unlink()
    with pytest.raises(SensorError) as exc:
        open_sensor("rapl", tmp_path)
    assert str(d / "max_energy_range_uj") in _one_line(exc)
    _write(d / "max_energy_range_uj", "99")
    (d / "energy_uj").unlink()
    with pytest.raises(SensorError) as exc:
        open_sensor("rapl:package-0", tmp_path)
    assert str(d / "energy_uj") in _one_line(exc)
    _write(d / "energy_uj", "garbage")
    with pytest.raises(SensorError, match="expected an integer"):
        open_sensor("rapl", tmp_path)


def test_permission_denied_says_what_to_do(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    d = _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    target = d / "energy_uj"
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        target.chmod(0)
        try:
            with pytest.raises(SensorError) as exc:
                open_sensor("rapl", tmp_path)
            assert str(target) in _one_line(exc)
        finally:
            target.chmod(0o644)
    real = Path.read_text

    def deny(self: Path, *args, **kwargs) -> str:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(SensorError) as exc:
        open_sensor("rapl", tmp_path)
    msg = _one_line(exc)
    assert str(target) in msg and "permission denied" in msg
    assert f"sudo chmod o+r {target}" in msg and "root" in msg and "--allow-model" in msg


# ---- hwmon and INA --------------------------------------------------------------------

def _hwmon(root: Path, n: int, name: str, files: dict[str, str]) -> Path:
    d = root / f"sys/class/hwmon/hwmon{n}"
    _write(d / "name", name)
    for k, v in files.items():
        _write(d / k, v)
    return d


def test_hwmon_power_and_energy_with_labels(tmp_path: Path) -> None:
    _hwmon(tmp_path, 0, "acpitz", {"temp1_input": "40000"})
    _hwmon(tmp_path, 2, "ina226", {"power1_input": "2500000", "power1_label": "VDD_SOC"})
    _hwmon(tmp_path, 10, "amd_energy", {"energy1_input": "7000000", "energy1_label": "Esocket0",
                                        "energy2_input": "1000000", "power1_input": "9000000",
                                        "power1_average": "1"})
    chans = discover_hwmon(tmp_path)
    assert [(c.device, c.channel, c.label) for c in chans] == [
        ("ina226", "power1", "VDD_SOC"), ("amd_energy", "energy1", "Esocket0"),
        ("amd_energy", "energy2", None), ("amd_energy", "power1", None)]
    ina = open_sensor("hwmon:ina226", tmp_path)
    assert (ina.kind, ina.name, ina.source) == ("power", "VDD_SOC", "hwmon:ina226/power1")
    assert ina.read() == pytest.approx(2.5)
    amd = open_sensor("hwmon:amd_energy", tmp_path)  # energy preferred
    assert (amd.kind, amd.source, amd.read()) == ("energy", "hwmon:amd_energy/energy1", 7.0)
    assert open_sensor("hwmon:hwmon10/power1", tmp_path).read() == pytest.approx(9.0)
    assert open_sensor("hwmon:amd_energy/Esocket0", tmp_path).read() == pytest.approx(7.0)
    assert isinstance(HwmonSensor(chans[2]), PowerSensor)
    with pytest.raises(SensorError) as exc:
        open_sensor("hwmon:acpitz", tmp_path)
    assert "found: amd_energy, ina226" in _one_line(exc)
    with pytest.raises(SensorError, match="no channel 'power7'"):
        open_sensor("hwmon:ina226/power7", tmp_path)


def test_ina3221_voltage_times_current(tmp_path: Path) -> None:
    d = _hwmon(tmp_path, 1, "ina3221", {"in1_input": "5000", "curr1_input": "100",
                                        "in2_input": "3300", "curr2_input": "250",
                                        "in5_input": "2"})
    sensor = InaSensor(d, 2)
    assert sensor.kind == "power" and sensor.source == "ina:ina3221/2"
    assert sensor.read() == pytest.approx(3.3 * 0.25)
    spec = open_sensor(f"ina:/sys/class/hwmon/hwmon1:{1}", tmp_path)  # resolved under root
    assert spec.read() == pytest.approx(0.5)
    with pytest.raises(SensorError) as exc:
        InaSensor(d, 3)
    assert str(d / "in3_input") in _one_line(exc)


def test_ina_direct_power_and_iio(tmp_path: Path) -> None:
    hw = _hwmon(tmp_path, 0, "ina219", {"in1_input": "12000", "curr1_input": "1",
                                        "power1_input": "1500000"})
    assert InaSensor(hw).read() == pytest.approx(1.5)  # power file wins over V*I
    iio = tmp_path / "sys/bus/iio/devices/iio:device0"
    _write(iio / "name", "ina226")
    _write(iio / "in_power2_raw", "400")
    _write(iio / "in_power2_scale", "2.500000000")  # mW per LSB
    sensor = open_sensor("ina:/sys/bus/iio/devices/iio:device0", tmp_path)
    assert sensor.source == "ina:ina226/power2" and sensor.read() == pytest.approx(1.0)
    with pytest.raises(SensorError, match="no in_power5"):
        InaSensor(iio, 5)


# ---- specs ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,fragment", [
    ("joulescope", "bad sensor spec"), ("hwmon:", "bad sensor spec"), ("ina:", "bad sensor"),
    ("replay:", "replay needs a file"), ("hwmon:nope", "no hwmon device 'nope'"),
    ("rapl:package-9", "'package-9' not found"), ("ina:/sys/class/hwmon/hwmon9", "hwmon9"),
])
def test_open_sensor_errors(tmp_path: Path, spec: str, fragment: str) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    with pytest.raises(SensorError) as exc:
        open_sensor(spec, tmp_path)
    assert fragment in _one_line(exc)


# ---- replay ---------------------------------------------------------------------------

def _trace(path: Path, column: str, fn) -> Path:
    t = np.arange(2001) / 1000.0  # 1 kHz for 2 s
    rows = zip(t.tolist(), fn(t).tolist(), strict=True)
    lines = [f"t_s,{column},note"] + [f"{a!r},{b!r},x" for a, b in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_reproduces_integral_energy(tmp_path: Path) -> None:
    exact = 2 * 2 + (1 - math.cos(2.0))  # integral of 2 + sin t over [0, 2]
    trace = open_sensor(f"replay:{_trace(tmp_path / 'p.csv', 'power_w', lambda t: 2 + np.sin(t))}")
    assert isinstance(trace, ReplaySensor) and trace.kind == "power"
    assert len(trace.samples()) == 2001 and trace.samples()[1] == (0.001, 2 + math.sin(0.001))
    assert integrate(trace) == pytest.approx(exact, rel=1e-3)
    now = [100.0]
    sampler = Sampler(trace, clock=lambda: now[0]).start()  # no thread: the trace, shifted
    assert sampler.samples()[0] == (100.0, 2.0) and sampler.dropped == 0
    assert sampler.energy_between(100.0, 102.0) == pytest.approx(exact, rel=1e-3)
    half = 2 * 1 + (1 - math.cos(1.0))
    assert sampler.energy_between(99.0, 101.0) == pytest.approx(half, rel=1e-3)
    cum = ReplaySensor(_trace(tmp_path / "e.csv", "energy_j", lambda t: 2 * t + 1 - np.cos(t)))
    assert cum.kind == "energy" and integrate(cum) == pytest.approx(exact, rel=1e-3)
    assert integrate(cum, 0.5, 1.5) == pytest.approx(2 + math.cos(0.5) - math.cos(1.5))


def test_replay_read_plays_back_in_time(tmp_path: Path) -> None:
    now = [5.0]
    trace = ReplaySensor(_trace(tmp_path / "p.csv", "power_w", lambda t: 3 * t),
                         clock=lambda: now[0])
    assert trace.read() == 0.0
    now[0] = 6.5
    assert trace.read() == pytest.approx(4.5)
    now[0] = 60.0
    assert trace.read() == pytest.approx(6.0)  # held after the end


@pytest.mark.parametrize("text,fragment", [
    ("t,power_w\n0,1\n1,1\n", "needs columns t_s"), ("t_s,power_w\n0,1\n", "at least 2"),
    ("t_s,power_w\n0,1\n0,1\n", "line 3: t_s 0.0 does not increase"),
    ("t_s,power_w\n0,1\n1,abc\n", "line 3"), ("t_s,energy_j\n0,5\n1,4\n", "decreases"),
])
def test_bad_traces(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SensorError) as exc:
        ReplaySensor(path)
    assert fragment in _one_line(exc) and str(path) in str(exc.value)
    with pytest.raises(SensorError, match="no such trace file"):
        open_sensor(f"replay:{tmp_path / 'none.csv'}")


# ---- sampler --------------------------------------------------------------------------

class FakeSensor(PowerSensor):
    def __init__(self, kind: str, fn) -> None:
        self.kind, self.name, self.source = kind, "fake", f"fake:{kind}"
        self.fn, self.t = fn, 0.0

    def read(self) -> float:
        return self.fn(self.t)


def _ticks(sampler: Sampler, sensor: FakeSensor, clock: list[float], times) -> None:
    for t in times:
        clock[0] = sensor.t = t
        sampler.tick()


def test_sampler_counts_dropped_samples() -> None:
    clock = [0.0]
    sensor = FakeSensor("power", lambda t: 1.0)
    sampler = Sampler(sensor, period_s=0.01, clock=lambda: clock[0])
    # gaps: 1 period, 1.4 (late, nothing missed), 1.6 (1 missed), 4 (3 missed)
    _ticks(sampler, sensor, clock, [0.0, 0.01, 0.024, 0.040, 0.080, 0.090])
    assert sampler.dropped == 4 and len(sampler.samples()) == 6
    full = Sampler(sensor, period_s=0.01, clock=lambda: clock[0], capacity=3)
    _ticks(full, sensor, clock, [0.0, 0.01, 0.02, 0.03, 0.04])
    assert full.dropped == 2 and [t for t, _ in full.samples()] == pytest.approx([0.02, 0.03,
                                                                                  0.04])


def test_energy_between_power_sensor() -> None:
    clock = [0.0]
    sensor = FakeSensor("power", lambda t: 10.0 * t)  # linear: trapezoid is exact
    sampler = Sampler(sensor, period_s=0.1, clock=lambda: clock[0])
    _ticks(sampler, sensor, clock, np.arange(11) / 10)
    assert sampler.energy_between(0.0, 1.0) == pytest.approx(5.0)
    assert sampler.energy_between(0.25, 0.55) == pytest.approx(5 * (0.55**2 - 0.25**2))
    assert sampler.energy_between(-5.0, 0.5) == pytest.approx(1.25)  # clipped to the span
    assert sampler.energy_between(0.7, 0.7) == 0.0


def test_energy_between_energy_sensor() -> None:
    clock = [0.0]
    sensor = FakeSensor("energy", lambda t: 100.0 + 3.0 * t * t)
    sampler = Sampler(sensor, period_s=0.5, clock=lambda: clock[0])
    _ticks(sampler, sensor, clock, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert sampler.energy_between(0.5, 1.5) == pytest.approx(6.0)
    # between samples: linear interpolation of the cumulative counter
    assert sampler.energy_between(0.25, 1.0) == pytest.approx(3.0 - 0.375)


def test_sampler_thread_samples_and_stops() -> None:
    sensor = FakeSensor("power", lambda t: 5.0)
    with Sampler(sensor, period_s=0.005) as sampler:
        t0 = time.monotonic()
        time.sleep(0.1)
    got = sampler.samples()
    assert sampler._thread is None and len(got) >= 5
    assert got[0][0] <= t0 and all(b[0] > a[0] for a, b in zip(got, got[1:], strict=False))
    span = got[-1][0] - got[0][0]
    assert sampler.energy_between(got[0][0], got[-1][0]) == pytest.approx(5.0 * span)
    assert sampler.source == "fake:power"


def test_sampler_start_fails_in_the_callers_thread(tmp_path: Path) -> None:
    d = _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    sensor = RaplSensor(discover_rapl(tmp_path))
    (d / "energy_uj").unlink()
    sampler = Sampler(sensor, period_s=0.005)
    with pytest.raises(SensorError, match="energy_uj"):
        sampler.start()
    assert sampler._thread is None
