"""SIGTERM ends a command as ``SystemExit(128 + signum)``, so ``with`` blocks unwind and
atomic writers remove their temporary files.

The handler raises in whatever Python code runs when the signal lands. If that code was
called back from a C extension that swallows exceptions (h5py prints "Exception ignored"
and goes on), the exit would be lost, so the signal is also remembered and ``check()``
raises it again: long loops call it through their progress updates.
"""

from __future__ import annotations

import signal

_pending: int | None = None


def _handler(signum: int, frame: object) -> None:
    global _pending
    _pending = signum
    raise SystemExit(128 + signum)


def install() -> None:
    """Route SIGTERM to ``SystemExit(128 + SIGTERM)``."""
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise the exit of a SIGTERM received earlier, if any."""
    if _pending is not None:
        raise SystemExit(128 + _pending)
