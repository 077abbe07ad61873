"""JSON-lines telemetry after F Prime: channels (sampled values) and events (things that
happened), one JSON object per line.

    {"t": 12.5, "kind": "channel", "name": "latency_ms", "value": 3.2}
    {"t": 12.5, "kind": "event", "name": "fallback", "severity": "warning", "backend": "lava"}

``t`` is ``clock()`` in seconds; extra keyword fields follow; numpy scalars and arrays become
plain numbers and lists (non-finite floats are written as ``NaN``/``Infinity``, which
``json`` reads back). Records live in a bounded ring buffer (the last ``ring_size``).

Durability: with a ``path``, every record is appended as one complete line by a single
``write`` on a file opened with ``O_APPEND`` and made durable by ``fsync`` before
``channel``/``event`` returns, so the file is atomic per record: a crash can leave at most
an unterminated last line, never a torn line in the middle. The file is never rewritten.
``read_telemetry`` skips an unterminated last line; reopening a file for appending first
cuts such a torn tail off (and says so with a ``telemetry_recovered`` event).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from hardware.errors import SpikeflightError

SEVERITIES = ("debug", "info", "warning", "error", "critical", "fatal")


class TelemetryError(SpikeflightError):
    """A telemetry file that cannot be written or read, or a bad record."""


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready builtins (numpy scalars and arrays included)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | deque):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _truncate_torn_tail(fd: int) -> int:
    """Cut an unterminated last line off the file ``fd``; the bytes removed."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    pos, block = size, 65536
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        pos = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    return size - keep


class Telemetry:
    """Channels and events into a ring buffer and, with ``path``, a durable JSON-lines file.

    ``clock`` gives ``t`` in seconds (``time.time``); use it as a context manager or call
    ``close()``.
    """

    def __init__(self, path: str | os.PathLike | None, ring_size: int = 1024,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(ring_size, int) or isinstance(ring_size, bool) or ring_size < 1:
            raise TelemetryError(f"telemetry: ring_size must be an integer >= 1, "
                                 f"got {ring_size!r}")
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self._ring: deque[dict[str, Any]] = deque(maxlen=ring_size)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.closed = False
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            cut = _truncate_torn_tail(self._fd)
            os.fsync(self._fd)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's directory entry is durable too
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise TelemetryError(f"{self.path}: cannot open telemetry file "
                                 f"({exc.strerror or exc})") from None
        if cut:
            self.event("telemetry_recovered", severity="warning", dropped_bytes=cut,
                       reason="unterminated last line from an earlier crash")

    # -- writing -------------------------------------------------------------------------
    def _put(self, record: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            if key in record:
                raise TelemetryError(f"telemetry {record['name']!r}: field {key!r} is reserved")
            record[key] = _plain(value)
        with self._lock:
            if self.closed:
                raise TelemetryError(f"telemetry {record['name']!r}: written after close()")
            if self._fd is not None:
                line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
                try:
                    view = memoryview(line)
                    while view:  # one write() in practice; loop on a short write
                        view = view[os.write(self._fd, view):]
                    os.fsync(self._fd)
                except OSError as exc:
                    raise TelemetryError(f"{self.path}: cannot append telemetry "
                                         f"({exc.strerror or exc})") from None
            self._ring.append(record)
        return record

    def channel(self, name: str, value: Any, **fields: Any) -> dict[str, Any]:
        """Record a sample of channel ``name`` (e.g. latency_ms, energy_j); the record."""
        return self._put({"t": float(self.clock()), "kind": "channel", "name": str(name),
                          "value": _plain(value)}, fields)

    def event(self, name: str, severity: str = "info", **fields: Any) -> dict[str, Any]:
        """Record event ``name`` (e.g. fallback, deadline_miss, safe_mode); the record."""
        if severity not in SEVERITIES:
            raise TelemetryError(f"telemetry event {name!r}: severity must be one of "
                                 f"{', '.join(SEVERITIES)}, got {severity!r}")
        return self._put({"t": float(self.clock()), "kind": "event", "name": str(name),
                          "severity": severity}, fields)

    # -- reading -------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """The records in the ring buffer, oldest first."""
        with self._lock:
            return list(self._ring)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The events in the ring buffer, all or those called ``name``."""
        return [r for r in self.records()
                if r["kind"] == "event" and (name is None or r["name"] == name)]

    def latest(self, channel: str) -> dict[str, Any] | None:
        """The newest sample of ``channel`` in the ring buffer (its ``value`` holds the
        value), or None."""
        with self._lock:
            for r in reversed(self._ring):
                if r["kind"] == "channel" and r["name"] == channel:
                    return r
        return None

    # -- life cycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the file (records stay readable in memory); idempotent."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.closed = True

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or record.get("kind") not in ("channel", "event"):
        return False
    t = record.get("t")
    return (isinstance(record.get("name"), str) and isinstance(t, int | float)
            and not isinstance(t, bool) and math.isfinite(t))


def read_telemetry(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSON-lines telemetry file, skipping an unterminated last line (a
    crash mid-write); a corrupt complete line raises ``TelemetryError`` naming
    ``file:line``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TelemetryError(f"{path}: cannot read telemetry ({exc.strerror or exc})") from None
    lines = data.split(b"\n")[:-1]  # the last piece is empty or an unterminated line
    out = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise TelemetryError(f"{path}:{number}: corrupt telemetry record ({why})") from None
        if not _is_record(record):
            raise TelemetryError(f"{path}:{number}: not a telemetry record (needs t, kind "
                                 f"channel/event and name)")
        out.append(record)
    return out
