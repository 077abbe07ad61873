"""Every verb that reads a file refuses a FIFO, a device or a directory in one line
(exit 2) instead of hanging or reading without end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.device import SPIKEFLIGHT


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    os.mkfifo(root / "fifo")
    run = root / "run"
    run.mkdir()
    os.mkfifo(run / "config.json")
    key = root / "k"
    res = subprocess.run([SPIKEFLIGHT, "keys", "generate", "-o", str(key)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return {"fifo": root / "fifo", "dir": root, "zero": Path("/dev/zero"), "run": run,
            "pub": Path(f"{key}.pub")}


@pytest.mark.parametrize(("args", "why"), [
    (["image", "verify", "{fifo}", "--pubkey", "{pub}"], "image file {fifo} is a FIFO"),
    (["image", "verify", "{zero}", "--pubkey", "{pub}"], "image file /dev/zero is a device"),
    (["image", "verify", "{dir}", "--pubkey", "{pub}"], "image file {dir} is a directory"),
    (["image", "verify", "{zero}", "--pubkey", "{fifo}"], "public key file {fifo} is a FIFO"),
    (["run", "{zero}", "--pubkey", "{pub}"], "image file /dev/zero is a device"),
    (["data", "info", "{fifo}"], "demonstration file {fifo} is a FIFO"),
    (["eval", "{run}", "--episodes", "1"], "checkpoint config {run}/config.json is a FIFO"),
    (["power", "profile", "{zero}", "--pubkey", "{pub}", "--csv", "{dir}"],
     "--csv {dir} is a directory: give a file name"),
])
def test_odd_inputs_are_refused_in_one_line(odd: dict[str, Path], args: list[str],
                                            why: str) -> None:
    res = subprocess.run([SPIKEFLIGHT, *[a.format(**odd) for a in args]], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and why.format(**odd) in lines[0] and "Traceback" not in res.stderr
