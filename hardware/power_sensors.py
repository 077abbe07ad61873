"""Readers of real Linux power/energy sources and a background sampler.

Every reader takes ``root`` (default ``/``) so tests can point it at a fake sysfs tree.
A sensor's ``kind`` is ``"energy"`` (``read()`` returns cumulative joules) or ``"power"``
(``read()`` returns instantaneous watts).

* RAPL / powercap: ``sys/class/powercap/intel-rapl:N[/intel-rapl:N:M]`` with ``name``,
  ``energy_uj`` and ``max_energy_range_uj``. The counter wraps past its range, so
  ``E_J = (energy_uj + k * (max_energy_range_uj + 1)) * 1e-6`` with ``k`` the wraps seen
  (a reading below the previous one is one wrap: sample at least once per wrap period).
* hwmon: ``sys/class/hwmon/hwmonN/`` with ``name``, ``powerK_input`` (uW, instantaneous)
  and/or ``energyK_input`` (uJ, cumulative), labels from ``powerK_label``/``energyK_label``.
* INA-style sysfs (``InaSensor``), layouts supported:
  hwmon ``ina2xx`` (INA219/226/230...: ``power1_input`` uW), hwmon ``ina3221`` and other
  drivers without a power file (``inN_input`` bus mV x ``currN_input`` mA:
  ``P_W = V_mV * I_mA * 1e-6``), and IIO ``ina2xx-adc`` (``in_powerN_raw`` x
  ``in_powerN_scale`` [+ ``in_powerN_offset``] or ``in_powerN_input``, in mW).
* Trace replay from CSV: columns ``t_s`` and ``energy_j`` (cumulative, preferred) or
  ``power_w``.

Integration: cumulative sensors give ``E = e(t1) - e(t0)`` (linear interpolation between
samples); power sensors the trapezoid rule ``E = sum (P_i + P_i+1) / 2 * (t_i+1 - t_i)``
over the samples inside ``[t0, t1]`` plus the interpolated end points. Energy outside the
sampled span is not counted. ``Sampler`` marks dropped samples: a wake-up gap ``g`` longer
than ``1.5 T`` (period ``T``) misses ``floor(g / T + 1/2) - 1`` samples; a full buffer
drops its oldest sample.
"""

from __future__ import annotations

import csv
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from hardware.errors import SpikeflightError

SPECS = "rapl[:ZONE] | hwmon:NAME[/CHANNEL] | ina:DIR[:N] | replay:TRACE.csv"
_FALLBACK = "use another --sensor or --allow-model to profile with energy models only"


class SensorError(SpikeflightError):
    """A power source that is missing, unreadable or malformed."""


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except PermissionError:
        raise SensorError(f"{path}: permission denied; run as root or `sudo chmod o+r {path}`, "
                          "or pass --allow-model to profile with energy models only") from None
    except FileNotFoundError:
        raise SensorError(f"{path}: no such file; is the driver loaded? {_FALLBACK}") from None
    except OSError as exc:
        raise SensorError(f"{path}: read failed ({exc.strerror or exc}); {_FALLBACK}") from None


def _read_float(path: Path) -> float:
    text = _read_text(path)
    try:
        return float(text)
    except ValueError:
        raise SensorError(f"{path}: expected a number, got {text[:40]!r}") from None


def _read_int(path: Path) -> int:
    text = _read_text(path)
    try:
        return int(text)
    except ValueError:
        raise SensorError(f"{path}: expected an integer, got {text[:40]!r}") from None


def _index(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


class PowerSensor(ABC):
    """One power or energy source: ``read()`` returns J (kind "energy") or W ("power")."""

    name: str
    kind: str
    source: str

    @abstractmethod
    def read(self) -> float: ...


# ---- RAPL -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RaplZone:
    path: Path
    dirname: str  # intel-rapl:0:1
    name: str  # dram
    label: str  # package-0/dram
    top: bool  # a package-level zone (not a subzone)


def discover_rapl(root: Path = Path("/")) -> list[RaplZone]:
    """The powercap RAPL zones (flat or nested layout), top zones first per package."""
    base = root / "sys/class/powercap"
    dirs: dict[str, Path] = {}
    for d in [*base.glob("intel-rapl:*"), *base.glob("intel-rapl:*/intel-rapl:*")]:
        if d.is_dir() and (d / "name").exists():
            dirs.setdefault(d.name, d)
    names = {k: _read_text(d / "name") for k, d in dirs.items()}
    zones = []
    for key in sorted(dirs, key=_index):
        parent = key.rsplit(":", 1)[0]
        top = parent == "intel-rapl"
        label = names[key] if top else f"{names.get(parent, parent)}/{names[key]}"
        zones.append(RaplZone(dirs[key], key, names[key], label, top))
    return zones


class RaplSensor(PowerSensor):
    """Cumulative joules of one or more RAPL zones (summed), wraparound handled."""

    kind = "energy"

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        if not zones:
            raise SensorError("RaplSensor needs at least one zone")
        self.zones = list(zones)
        self.name = "+".join(z.label for z in self.zones)
        self.source = f"rapl:{self.name}"
        self._range = [_read_int(z.path / "max_energy_range_uj") + 1 for z in self.zones]
        self._last: list[int | None] = [None] * len(self.zones)
        self._offset = [0] * len(self.zones)

    def read(self) -> float:
        total = 0
        for i, z in enumerate(self.zones):
            raw = _read_int(z.path / "energy_uj")
            last = self._last[i]
            if last is not None and raw < last:
                self._offset[i] += self._range[i]
            self._last[i] = raw
            total += raw + self._offset[i]
        return total * 1e-6


# ---- hwmon ----------------------------------------------------------------------------

@dataclass(frozen=True)
class HwmonChannel:
    path: Path  # the hwmonN directory
    device: str  # its ``name``
    channel: str  # power1 | energy2
    label: str | None

    @property
    def kind(self) -> str:
        return "power" if self.channel.startswith("power") else "energy"


def discover_hwmon(root: Path = Path("/")) -> list[HwmonChannel]:
    """Every ``power*_input``/``energy*_input`` channel under ``sys/class/hwmon``."""
    found = []
    base = root / "sys/class/hwmon"
    for d in sorted(base.glob("hwmon*"), key=lambda p: _index(p.name)):
        device = _read_text(d / "name") if (d / "name").exists() else d.name
        chans = [m.group(1) for f in d.iterdir()
                 if (m := re.fullmatch(r"((?:power|energy)\d+)_input", f.name))]
        for ch in sorted(chans, key=lambda c: (c[0] == "p", _index(c))):
            lab = d / f"{ch}_label"
            found.append(HwmonChannel(d, device, ch, _read_text(lab) if lab.exists() else None))
    return found


class HwmonSensor(PowerSensor):
    """``powerK_input`` (uW -> W) or ``energyK_input`` (uJ -> J) of one hwmon device."""

    def __init__(self, channel: HwmonChannel) -> None:
        self.channel = channel
        self.kind = channel.kind
        self.name = channel.label or channel.channel
        self.source = f"hwmon:{channel.device}/{channel.channel}"
        self._file = channel.path / f"{channel.channel}_input"

    def read(self) -> float:
        return _read_int(self._file) * 1e-6


# ---- INA-style ------------------------------------------------------------------------

class InaSensor(PowerSensor):
    """Instantaneous watts of an INA219/226/3221-style monitor (layouts: module docstring).

    ``channel`` picks ``powerN``/``inN``x``currN`` (hwmon, default 1) or ``in_powerN``
    (IIO, default: the device's first power channel).
    """

    kind = "power"

    def __init__(self, directory: Path, channel: int | None = None) -> None:
        if not directory.is_dir():
            raise SensorError(f"{directory}: no such INA sensor directory; {_FALLBACK}")
        self.directory = directory
        dev = _read_text(directory / "name") if (directory / "name").exists() else directory.name
        iio = sorted({m.group(1) for f in directory.iterdir()
                      if (m := re.fullmatch(r"in_power(\d+)_(?:raw|input)", f.name))}, key=int)
        self._files: tuple[Path, ...]
        if iio:
            n = str(channel) if channel is not None else iio[0]
            if n not in iio:
                raise SensorError(f"{directory}: no in_power{n}_raw/_input (power channels: "
                                  f"{', '.join(iio)})")
            self._iio = n
            self.name, self.source = dev, f"ina:{dev}/power{n}"
            return
        self._iio = None
        n = str(channel if channel is not None else 1)
        power = directory / f"power{n}_input"
        if power.exists():
            self._files = (power,)
        else:
            self._files = (directory / f"in{n}_input", directory / f"curr{n}_input")
            for f in self._files:
                if not f.exists():
                    raise SensorError(f"{f}: no such file, and no {power.name} either: not an "
                                      f"INA-style channel {n}; {_FALLBACK}")
        self.name, self.source = dev, f"ina:{dev}/{n}"

    def read(self) -> float:
        if self._iio is not None:
            base = self.directory / f"in_power{self._iio}"
            processed = Path(f"{base}_input")
            if processed.exists():
                return _read_float(processed) * 1e-3
            offset = Path(f"{base}_offset")
            raw = _read_float(Path(f"{base}_raw"))
            raw += _read_float(offset) if offset.exists() else 0.0
            return raw * _read_float(Path(f"{base}_scale")) * 1e-3
        if len(self._files) == 1:
            return _read_int(self._files[0]) * 1e-6
        return _read_float(self._files[0]) * _read_float(self._files[1]) * 1e-6


# ---- trace replay ---------------------------------------------------------------------

class ReplaySensor(PowerSensor):
    """A recorded trace: ``samples()`` is the trace; ``read()`` plays it back in real time
    (the value at the time elapsed since the first read, held after the end)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self._clock, self._t0 = path, clock, None
        self.name, self.source = path.stem, f"replay:{path.name}"
        try:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                fields = [f.strip() for f in reader.fieldnames or []]
        except FileNotFoundError:
            raise SensorError(f"{path}: no such trace file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SensorError(f"{path}: cannot read the trace ({exc})") from None
        col = next((c for c in ("energy_j", "power_w") if c in fields), None)
        if "t_s" not in fields or col is None:
            raise SensorError(f"{path}: a trace needs columns t_s and energy_j or power_w, "
                              f"found: {', '.join(fields) or 'nothing'}")
        self.kind = "energy" if col == "energy_j" else "power"
        vals = []
        for line, row in enumerate(rows, start=2):
            row = {(k or "").strip(): v for k, v in row.items()}
            try:
                t, v = float(row["t_s"]), float(row[col])
            except (TypeError, ValueError):
                raise SensorError(f"{path} line {line}: t_s and {col} must be numbers, got "
                                  f"{row['t_s']!r}, {row[col]!r}") from None
            if not (math.isfinite(t) and math.isfinite(v)):
                raise SensorError(f"{path} line {line}: non-finite value")
            if vals and t <= vals[-1][0]:
                raise SensorError(f"{path} line {line}: t_s {t} does not increase")
            if vals and self.kind == "energy" and v < vals[-1][1]:
                raise SensorError(f"{path} line {line}: cumulative energy_j decreases")
            vals.append((t, v))
        if len(vals) < 2:
            raise SensorError(f"{path}: a trace needs at least 2 samples, found {len(vals)}")
        arr = np.asarray(vals, dtype=np.float64)
        self.times, self.values = arr[:, 0], arr[:, 1]

    def samples(self) -> list[tuple[float, float]]:
        return list(zip(self.times.tolist(), self.values.tolist(), strict=True))

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return iter(self.samples())

    def read(self) -> float:
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        t = self.times[0] + (now - self._t0)
        return float(np.interp(t, self.times, self.values))


def _energy(t: np.ndarray, v: np.ndarray, kind: str, t0: float, t1: float) -> float:
    """Joules between t0 and t1 (module docstring), clipped to the sampled span."""
    if t.size < 2:
        return 0.0
    a, b = max(t0, float(t[0])), min(t1, float(t[-1]))
    if b <= a:
        return 0.0
    va, vb = float(np.interp(a, t, v)), float(np.interp(b, t, v))
    if kind == "energy":
        return vb - va
    inside = (t > a) & (t < b)
    ts = np.concatenate(([a], t[inside], [b]))
    vs = np.concatenate(([va], v[inside], [vb]))
    return float(np.sum((vs[1:] + vs[:-1]) * np.diff(ts)) / 2)


def integrate(trace: ReplaySensor, t0: float = -math.inf, t1: float = math.inf) -> float:
    """Joules of a trace (trapezoid on power, difference of cumulative energy)."""
    return _energy(trace.times, trace.values, trace.kind, t0, t1)


# ---- specs ----------------------------------------------------------------------------

def _open_rapl(arg: str, root: Path) -> RaplSensor:
    zones = discover_rapl(root)
    base = root / "sys/class/powercap"
    if not zones:
        raise SensorError(f"no RAPL zones under {base}: this machine has no powercap interface "
                          "(or it is not mounted); use --sensor hwmon:... or --allow-model to "
                          "profile with energy models only")
    if not arg:
        top = [z for z in zones if z.top]
        return RaplSensor([z for z in top if z.name.startswith("package")] or top)
    hit = [z for z in zones if arg in (z.label, z.dirname)] or [z for z in zones if z.name == arg]
    if len(hit) != 1:
        why = "is ambiguous" if hit else "not found"
        raise SensorError(f"RAPL zone {arg!r} {why} under {base} (zones: "
                          f"{', '.join(z.label for z in zones)})")
    return RaplSensor(hit)


def _open_hwmon(arg: str, root: Path) -> HwmonSensor:
    device, _, want = arg.partition("/")
    chans = discover_hwmon(root)
    mine = [c for c in chans if device in (c.device, c.path.name)]
    base = root / "sys/class/hwmon"
    if not mine:
        names = sorted({c.device for c in chans})
        raise SensorError(f"no hwmon device {device!r} with power/energy inputs under {base} "
                          f"(found: {', '.join(names) or 'none'}); {_FALLBACK}")
    mine = [c for c in mine if c.path == mine[0].path]
    if want:
        mine = [c for c in mine if want in (c.channel, c.label)]
        if not mine:
            raise SensorError(f"hwmon device {device!r} has no channel {want!r}; {_FALLBACK}")
    return HwmonSensor(mine[0])


def open_sensor(spec: str, root: Path = Path("/")) -> PowerSensor:
    """Open (and probe with one read) the sensor named by ``spec`` (grammar: ``SPECS``):
    ``rapl`` sums the package zones; ``rapl:ZONE`` takes a label (``package-0``,
    ``package-0/dram``), a unique zone name or a directory (``intel-rapl:0:1``);
    ``hwmon:NAME`` takes the device's first energy channel, else its first power channel;
    ``ina:DIR[:N]`` and sysfs paths resolve under ``root``; ``replay:FILE`` does not."""
    kind, _, arg = spec.strip().partition(":")
    if kind == "replay":
        if not arg:
            raise SensorError(f"sensor spec {spec!r}: replay needs a file (replay:TRACE.csv)")
        return ReplaySensor(Path(arg))
    if kind == "rapl":
        sensor: PowerSensor = _open_rapl(arg, root)
    elif kind == "hwmon" and arg:
        sensor = _open_hwmon(arg, root)
    elif kind == "ina" and arg:
        path, _, n = arg.rpartition(":")
        path, channel = (path, int(n)) if path and n.isdigit() else (arg, None)
        p = Path(path)
        sensor = InaSensor(root / p.relative_to("/") if p.is_absolute() else p, channel)
    else:
        raise SensorError(f"bad sensor spec {spec!r}: expected {SPECS}")
    sensor.read()
    return sensor


# ---- sampling -------------------------------------------------------------------------

class Sampler:
    """Samples ``sensor`` every ``period_s`` (seconds of ``clock``) into a bounded buffer.

    ``start()`` takes a first sample in the caller's thread (so an unreadable sensor fails
    there) and runs a daemon thread; ``tick()`` takes one sample by hand (tests, no
    thread). A replay sensor is not threaded: ``start()`` anchors its trace's first sample
    at ``clock()``, and ``samples()`` is the shifted trace.
    """

    def __init__(self, sensor: PowerSensor, period_s: float = 0.01,
                 clock: Callable[[], float] = time.monotonic, capacity: int = 500_000) -> None:
        if period_s <= 0 or capacity < 2:
            raise ValueError("Sampler needs period_s > 0 and capacity >= 2")
        self.sensor, self.period_s, self._clock = sensor, period_s, clock
        self.source, self.kind = sensor.source, sensor.kind
        self.dropped = 0
        self.last_error: SensorError | None = None
        self._buf: deque[tuple[float, float]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._last_t: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replay = sensor if isinstance(sensor, ReplaySensor) else None
        self._shift = 0.0

    def tick(self) -> None:
        """Take one sample now, counting missed periods and buffer overflow as dropped."""
        if self._replay is not None:
            return
        t = self._clock()
        value = self.sensor.read()
        with self._lock:
            if self._last_t is not None and t - self._last_t > 1.5 * self.period_s:
                self.dropped += math.floor((t - self._last_t) / self.period_s + 0.5) - 1
            self._last_t = t
            if len(self._buf) == self._buf.maxlen:
                self.dropped += 1
            self._buf.append((t, value))

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except SensorError as exc:
            self.last_error = exc
            with self._lock:
                self.dropped += 1

    def _run(self) -> None:
        due = self._clock() + self.period_s
        while not self._stop.wait(max(0.0, due - self._clock())):
            self._safe_tick()
            due += self.period_s
            now = self._clock()
            if due < now:  # fell behind: the next tick counts the missed periods
                due = now + self.period_s

    def start(self) -> Sampler:
        if self._replay is not None:
            self._shift = self._clock() - float(self._replay.times[0])
            return self
        if self._thread is None:
            self.tick()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="power-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._safe_tick()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._replay is not None:
            return self._replay.times + self._shift, self._replay.values
        with self._lock:
            arr = np.asarray(self._buf, dtype=np.float64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def samples(self) -> list[tuple[float, float]]:
        """(t, value) pairs, oldest first: t in ``clock`` seconds, value in J or W."""
        t, v = self._arrays()
        return list(zip(t.tolist(), v.tolist(), strict=True))

    def energy_between(self, t0: float, t1: float) -> float:
        """Joules between clock times t0 and t1 (0.0 with fewer than two samples there)."""
        t, v = self._arrays()
        return _energy(t, v, self.kind, t0, t1)
