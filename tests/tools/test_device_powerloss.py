"""Power cuts and killed clients: the device agent is SIGKILLed at seeded random fail
points of every phase of a flash (upload, state write, boot/swap, self-test, confirm), and
the flash client at random offsets of its upload. After each cut the device must come
back running a verified, confirmed image (the old one unless the confirm had landed),
and flashing again must complete with slot 0 equal to the image byte for byte.

Per-phase counts are printed (``pytest -s``); the default suite cuts at 25 fail points,
``make test-all`` at 300 more."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from runtime.failpoints import PHASES
from runtime.image import load_image, read_image, write_image
from tests.fixtures.device import SPIKEFLIGHT, Agent
from tests.fixtures.resign import resign
from tools import smp_client
from tools.device_cmd import describe
from tools.flash import flash
from tools.smp_client import LinkError

# trials per phase in the default suite (25 in all, about 50 s); test-all runs 300 more
TRIALS = {phase: 5 for phase in PHASES}
MANY = {"upload": 80, "state": 48, "swap": 48, "selftest": 64, "confirm": 60}


@pytest.fixture(scope="module")
def failpoint_counts(fleet, tmp_path_factory) -> dict[str, int]:
    """How many fail points each phase passes in one flash of B over A (traced run)."""
    storage = tmp_path_factory.mktemp("trace") / "device"
    shutil.copytree(fleet["provisioned"], storage)
    dev = Agent(storage, fleet["pub"], "cpu-fixed").start("trace")
    try:
        assert flash(fleet["B"], dev.link, "confirm", False, 5.0)["result"] == "confirmed"
    finally:
        dev.kill()
    counts: dict[str, int] = {}
    for phase, n in re.findall(r"failpoint (\w+) (\d+)", dev.log()):
        counts[phase] = max(counts.get(phase, 0), int(n))
    assert set(counts) == set(PHASES), counts
    return counts


def _bank_of_slot0(storage: Path) -> bytes:
    primary = json.loads((storage / "state.json").read_text())["primary"]
    return (storage / f"bank-{primary}.img").read_bytes()


def _expected(phase: str, last: bool) -> tuple[str, bool]:
    """(image, confirmed) the next boot must come back to, from MCUboot's rules and where
    the cut fell (``last``: after the phase's final rename, so its state write landed).

    A landed test mark, or a swap cut before its state write landed, boots B on trial (the
    swap is redone); a landed swap means a trial found at boot, which reverts; a landed
    confirm keeps B; everything else (upload, self-test, an unlanded confirm) is A."""
    if phase == "state" and last or phase == "swap" and not last:
        return "B", False
    if phase == "confirm" and last:
        return "B", True
    return "A", True


def _status(link: str) -> dict:
    async def job(client):
        return describe(await smp_client.images(client), await smp_client.report(client))
    return smp_client.run(link, 5.0, job)


def _trial(fleet, storage: Path, phase: str, k: int, counts: dict[str, int]) -> dict:
    digests = {n: read_image(load_image(fleet[n])).digest for n in ("A", "B")}
    dev = Agent(storage, fleet["pub"], "cpu-fixed")
    try:
        dev.start(f"{phase}:{k}")
        # the device dies under the client; a client that gave up early on a loaded
        # machine flashes again (resuming), which reaches the same fail point
        for timeout in (0.5, 2.0, 5.0):
            with contextlib.suppress(LinkError):
                flash(fleet["B"], dev.link, "confirm", False, timeout, boot_timeout=2.0)
            if dev.wait_dead(3.0):
                break
    except RuntimeError:
        pass  # died while booting, before it listened
    assert dev.wait_dead(), f"{phase}:{k} did not cut"
    dev.kill()
    want, confirmed = _expected(phase, k == counts[phase])
    with Agent(storage, fleet["pub"], "cpu-fixed") as dev:
        state = _status(dev.link)
        slot0 = next(s for s in state["slots"] if s["slot"] == 0)
        ok = (state["boot"]["result"] == "running" and slot0["active"]
              and slot0["confirmed"] == confirmed and slot0["hash"] == digests[want])
        assert ok, (phase, k, want, state["boot"], state["slots"])
        again = flash(fleet["B"], dev.link, "confirm", False, 5.0)
        assert again["result"] in ("confirmed", "already running"), again
    assert _bank_of_slot0(storage) == load_image(fleet["B"])
    return {"phase": phase, "k": k, "came_back": want,
            "resumed_from": again.get("resumed_from", 0)}


def _run_trials(fleet, counts, root: Path, trials: dict[str, int], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    jobs = []
    for phase, n in trials.items():
        for i in range(n):
            storage = root / f"{phase}-{i}"
            shutil.copytree(fleet["provisioned"], storage)
            jobs.append((storage, phase, int(rng.integers(1, counts[phase] + 1))))
    with ThreadPoolExecutor(2) as pool:  # each trial waits on processes: two at once
        results = list(pool.map(lambda j: _trial(fleet, j[0], j[1], j[2], counts), jobs))
    for storage, _, _ in jobs:
        shutil.rmtree(storage)
    return results


def _table(results: list[dict]) -> str:
    by = Counter((r["phase"], r["came_back"]) for r in results)
    rows = [f"{p:9s} trials {sum(by[(p, w)] for w in 'AB'):3d}  came back to the old image "
            f"{by[(p, 'A')]:3d}, the new one {by[(p, 'B')]:3d}, none 0" for p in TRIALS]
    return "\n".join(rows)


def test_power_cut_at_any_fail_point_leaves_a_verified_image(fleet, failpoint_counts,
                                                              tmp_path) -> None:
    results = _run_trials(fleet, failpoint_counts, tmp_path, TRIALS, seed=11)
    assert len(results) == sum(TRIALS.values()) >= 25
    assert {r["phase"] for r in results} == set(PHASES)
    assert any(r["came_back"] == "B" for r in results)  # the seeds reach a landed confirm
    print(f"\nfail points per phase {failpoint_counts}\n{_table(results)}")


@pytest.mark.slow
def test_power_cut_many_more_trials(fleet, failpoint_counts, tmp_path) -> None:
    results = _run_trials(fleet, failpoint_counts, tmp_path, MANY, seed=12)
    print(f"\n{_table(results)}")


@pytest.fixture(scope="module")
def big_images(fleet, tmp_path_factory) -> list[Path]:
    """Three versions of A with 3 MB of extra section each: uploads long enough to kill a
    client inside them; flashed in turn, so slot 1 never already holds the next one."""
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("big")
    out = []
    for i in range(3):
        data = resign(load_image(fleet["A"]), fleet["key"], version=f"0.5.{i}", counter=1,
                      sections={"ballast.bin": rng.integers(0, 256, 3 << 20, np.uint8).tobytes()})
        out.append(write_image(root / f"big{i}.sfimg", data))
    return out


def _flash_proc(image: Path, link: str) -> subprocess.Popen:
    return subprocess.Popen([SPIKEFLIGHT, "flash", str(image), "--link", link, "--confirm"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # 20 killed uploads of 3.3 MB: about 90 s (make test-all)
def test_a_killed_client_resumes_where_the_device_stopped(fleet, device_storage, big_images
                                                          ) -> None:
    rng = np.random.default_rng(21)
    resumed = []
    with Agent(device_storage, fleet["pub"], "cpu-fixed", "serial:pty") as dev:
        for trial in range(20):
            image = big_images[trial % 3]
            proc = _flash_proc(image, dev.link)
            first = proc.stderr.readline()  # the first progress line: the upload runs
            assert first.startswith("upload "), first + proc.stderr.read()
            time.sleep(float(rng.uniform(0.0, 0.6)))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            again = _flash_proc(image, dev.link)
            out, err = again.communicate(timeout=120)
            assert again.returncode == 0, err
            # a kill that came after the end leaves nothing to do: also fine
            assert "result: running, confirmed" in out or "already runs it, confirmed" in out, out
            m = re.search(r"resumed at byte (\d+)", out)
            resumed.append(int(m[1]) if m else 0)
            assert _bank_of_slot0(device_storage) == load_image(image)
    size = image.stat().st_size
    assert sum(0 < r < size for r in resumed) >= 15, resumed  # most kills land mid-upload
    print(f"\nclient kills: 20, resumed at bytes {sorted(resumed)} of {size}")
