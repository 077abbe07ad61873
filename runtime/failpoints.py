"""Fail points for crash-consistency tests of the device agent: named places between the
durable steps of storage and boot (before and after each write, fsync and rename; between
self-test vectors) where a test can make the process die as a power cut would.

Inert unless ``SPIKEFLIGHT_FAILPOINT`` is set:

- ``PHASE:K``: the K-th time (1-based) fail point ``PHASE`` is reached, the process
  SIGKILLs itself (no cleanup, no flush: what survives is what was already on storage).
- ``trace``: every fail point reached is written to stderr as ``failpoint PHASE N``, so a
  test can count the points of each phase before choosing where to cut.

Phases: ``upload`` (slot 1 writes and their records), ``state`` (marking slot 1 for test),
``swap`` (boot-time swap or revert), ``selftest`` (between golden chunks), ``confirm``.
"""

from __future__ import annotations

import os
import signal
import sys

PHASES = ("upload", "state", "swap", "selftest", "confirm")
ENV = "SPIKEFLIGHT_FAILPOINT"
_hits: dict[str, int] = {}


def failpoint(phase: str) -> None:
    """Count one pass through ``phase``; die here if the environment says so."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    n = _hits[phase] = _hits.get(phase, 0) + 1
    if spec == "trace":
        print(f"failpoint {phase} {n}", file=sys.stderr, flush=True)
    elif spec == f"{phase}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)
