"""Per-chunk deadline: times each chunk computation against ``deadline_s``.

    elapsed = clock() at exit - clock() at entry     (s)
    missed  = elapsed > deadline_s

The computation is not interrupted: a late chunk is finished, then dropped by the caller,
who commands the safe action (hold position) instead. Every miss increments ``misses`` and
emits ``on_event("deadline_miss", severity="warning", chunk=i, elapsed_ms=.., deadline_ms=..)``
(the ``runtime.telemetry.Telemetry.event`` signature).

    with watchdog.guard(chunk_index) as g:
        chunk = backend.chunk(...)
    if g.missed:
        chunk = None  # hold position
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from hardware.errors import SpikeflightError

EventFn = Callable[..., None]


class WatchdogError(SpikeflightError):
    """A bad watchdog setting."""


class Guard:
    """Times one chunk; ``elapsed_s`` and ``missed`` are set when the block exits."""

    def __init__(self, watchdog: Watchdog, chunk_index: int) -> None:
        self.watchdog, self.chunk_index = watchdog, chunk_index
        self.t_start: float | None = None
        self.elapsed_s: float | None = None
        self.missed = False

    def __enter__(self) -> Guard:
        self.t_start = self.watchdog.clock()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        t_now = self.watchdog.clock()
        self.elapsed_s = t_now - self.t_start
        self.missed = self.watchdog.check(self.t_start, t_now, self.chunk_index)


class Watchdog:
    """Deadline ``deadline_s`` (s, > 0) per chunk, measured with ``clock`` (s)."""

    def __init__(self, deadline_s: float, clock: Callable[[], float] = time.monotonic,
                 on_event: EventFn | None = None) -> None:
        if not (isinstance(deadline_s, numbers.Real) and not isinstance(deadline_s, bool)
                and math.isfinite(float(deadline_s)) and deadline_s > 0):
            raise WatchdogError(f"watchdog: deadline must be a positive number of seconds, "
                                f"got {deadline_s!r}")
        self.deadline_s = float(deadline_s)
        self.clock = clock
        self.on_event = on_event
        self.misses = 0

    def guard(self, chunk_index: int) -> Guard:
        """A context manager that times chunk ``chunk_index``."""
        return Guard(self, chunk_index)

    def check(self, t_start: float, t_now: float, chunk_index: int | None = None) -> bool:
        """True (and a ``deadline_miss`` event) when ``t_now - t_start > deadline_s``."""
        elapsed = t_now - t_start
        if elapsed <= self.deadline_s:
            return False
        self.misses += 1
        if self.on_event is not None:
            fields: dict[str, Any] = {"chunk": chunk_index, "elapsed_ms": elapsed * 1e3,
                                      "deadline_ms": self.deadline_s * 1e3}
            self.on_event("deadline_miss", severity="warning", **fields)
        return True
