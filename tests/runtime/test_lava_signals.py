"""SIGTERM and SIGINT end ``run --backend lava`` within seconds, Lava's processes with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM,
                                 pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_ends_a_lava_run_and_its_processes(tiny_images: dict[str, Path],
                                                    sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "run", str(tiny_images["loihi2"]),
                             "--pubkey", str(tiny_images["pub"]), "--backend", "lava",
                             "-n", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while len(kids := _children(proc.pid)) < 5:  # Lava's processes are up
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(1.0)  # inside the control loop, between or during Lava runs
        kids = _children(proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert took < 5.0, f"took {took:.1f} s"
    assert "Traceback" not in err and "leaked" not in err, err
    time.sleep(0.5)
    assert not [k for k in kids if _alive(k)]
