"""``spikeflight flash`` and ``spikeflight device`` against a real device agent process,
over UDP on loopback and over a pty: flash, trial, confirm, rollback, automatic revert of
an image that fails its self-test, and every refusal with its exit code, its message and
the device left as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runtime.image import arrays_to_bytes, load_image, read_image, write_image
from runtime.keys import save_keypair
from runtime.selftest import SELFTEST
from tests.fixtures.device import Agent, cli, status
from tests.fixtures.resign import resign

LINKS = ["udp:127.0.0.1:0", "serial:pty"]


def _digest(path: Path) -> str:
    return read_image(load_image(path)).digest


def _running(state: dict) -> tuple[str, bool]:
    slot0 = next(s for s in state["slots"] if s["slot"] == 0)
    assert slot0["active"] and state["boot"]["result"] == "running"
    return slot0["hash"], slot0["confirmed"]


def _snapshot(storage: Path) -> dict[str, str]:
    """Every storage file but the event log, hashed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(storage.iterdir())
            if p.is_file() and p.name != "events.jsonl"}


@pytest.mark.parametrize("link", LINKS)
def test_flash_test_confirm_and_rollback(fleet, device_storage: Path, link: str) -> None:
    with Agent(device_storage, fleet["pub"], "cpu-fixed", link) as dev:
        assert _running(status(dev.link)) == (_digest(fleet["A"]), True)
        res = cli("flash", fleet["B"], "--link", dev.link, "--test")
        assert res.returncode == 0, res.stderr
        line = res.stdout.strip()
        assert line.startswith("B.sfimg: ") and "to slot 1; version 0.1.0 -> 0.2.0" in line
        assert "security counter 0 -> 1" in line and "running on trial" in line
        assert "upload 100%" in res.stderr  # plain progress lines off a terminal
        state = status(dev.link)
        assert _running(state) == (_digest(fleet["B"]), False)
        assert state["boot"]["selftest"]["passed"] and state["security_counter"] == 0
        res = cli("device", "confirm", "--link", dev.link, "--json")
        assert res.returncode == 0, res.stderr
        state = json.loads(res.stdout)
        assert _running(state) == (_digest(fleet["B"]), True) and state["security_counter"] == 1

        assert cli("flash", fleet["C"], "--link", dev.link, "--test").returncode == 0
        res = cli("device", "rollback", "--link", dev.link)
        assert res.returncode == 0 and "reverted the trial image" in res.stdout, res.stdout
        assert _running(status(dev.link)) == (_digest(fleet["B"]), True)
        res = cli("device", "rollback", "--link", dev.link)
        assert res.returncode == 2 and "nothing to roll back: slot 0 is confirmed" in res.stderr
    # a power cycle keeps the confirmed image
    with Agent(device_storage, fleet["pub"], "cpu-fixed", link) as dev:
        assert _running(status(dev.link)) == (_digest(fleet["B"]), True)


def test_a_reset_reverts_an_unconfirmed_trial_and_confirm_makes_it_stay(fleet,
                                                                       device_storage) -> None:
    with Agent(device_storage, fleet["pub"], "cpu-fixed") as dev:
        assert cli("flash", fleet["B"], "--link", dev.link, "--test").returncode == 0
        res = cli("device", "reset", "--link", dev.link, "--json")
        assert res.returncode == 0
        state = json.loads(res.stdout)
        assert _running(state) == (_digest(fleet["A"]), True)
        assert "not confirmed before the reset" in state["boot"]["reason"]
        res = cli("flash", fleet["B"], "--link", dev.link, "--confirm")
        assert res.returncode == 0 and "result: running, confirmed" in res.stdout
        res = cli("device", "reset", "--link", dev.link, "--json")
        assert _running(json.loads(res.stdout)) == (_digest(fleet["B"]), True)
        res = cli("flash", fleet["B"], "--link", dev.link, "--confirm")
        assert res.returncode == 0 and "already runs it" in res.stdout


def test_dry_run_prints_the_plan_and_changes_nothing(fleet, device_storage) -> None:
    before = _snapshot(device_storage)
    with Agent(device_storage, fleet["pub"], "cpu-fixed") as dev:
        res = cli("flash", fleet["B"], "--link", dev.link, "--confirm", "--dry-run")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("plan: upload B.sfimg (") and "nothing changed" in res.stdout
        assert "running 0.1.0 (security counter 0), then boot and confirm it" in res.stdout
    assert _snapshot(device_storage) == before


def test_an_image_that_fails_its_selftest_is_reverted_and_the_operator_told_why(
        fleet, device_storage, tmp_path) -> None:
    data = load_image(fleet["B"])
    golden = read_image(data).arrays(SELFTEST)
    golden["x0_fixed"][1, 0, 0] += 2.0 ** -20  # verifies, but its golden outputs are wrong
    bad = write_image(tmp_path / "bad.sfimg", resign(data, fleet["key"], sections={
        SELFTEST: arrays_to_bytes(golden)}))
    with Agent(device_storage, fleet["pub"], "cpu-fixed") as dev:
        res = cli("flash", bad, "--link", dev.link, "--confirm")
        assert res.returncode == 1
        assert "error: the device reverted: reverted the trial image: self-test failed: golden " \
            "chunk 1 differs on onnx-fixed" in res.stderr, res.stderr
        assert "result: reverted to the previous image" in res.stdout
        state = status(dev.link)
        assert _running(state) == (_digest(fleet["A"]), True)
        assert state["security_counter"] == 0
        assert any(e["event"] == "revert" and "self-test failed" in e["reason"]
                   for e in state["events"])


def _refusals(fleet, tmp_path: Path) -> list[tuple[str, Path, str, dict]]:
    data = load_image(fleet["B"])
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x40
    (tmp_path / "t.sfimg").write_bytes(bytes(tampered))
    other_key, _ = save_keypair(tmp_path / "other")
    low = resign(load_image(fleet["A"]), fleet["key"], version="0.1.1", counter=0)
    return [
        ("tampered", tmp_path / "t.sfimg", "SHA-256 mismatch", {}),
        ("unknown key", write_image(tmp_path / "k.sfimg", resign(data, other_key)),
         "device refused the image: signed by key", {}),
        ("wrong target", fleet["cpu"], "target class cpu, the device is cpu-fixed", {}),
        ("lower counter", write_image(tmp_path / "low.sfimg", low),
         "security counter 0 is lower than the device's 1 (anti-rollback)", {"counter": 1}),
        ("larger than slot", fleet["C"], "is larger than the slot (4096 bytes)",
         {"slot_size": 4096}),
    ]


def test_every_refusal_exits_2_with_its_reason_and_leaves_the_device_as_it_was(
        fleet, device_storage, tmp_path) -> None:
    with Agent(device_storage, fleet["pub"], "cpu-fixed") as dev:  # confirm B: counter 1
        assert cli("flash", fleet["B"], "--link", dev.link, "--confirm").returncode == 0
    for what, image, message, opts in _refusals(fleet, tmp_path):
        before = _snapshot(device_storage)
        with Agent(device_storage, fleet["pub"], "cpu-fixed",
                   slot_size=opts.get("slot_size")) as dev:
            res = cli("flash", image, "--link", dev.link, "--confirm")
            assert res.returncode == 2, (what, res.stdout, res.stderr)
            assert res.stderr.startswith("error: ") and message in res.stderr, (what, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
            assert _running(status(dev.link)) == (_digest(fleet["B"]), True), what
        assert _snapshot(device_storage) == before, what


def test_a_link_with_no_device_is_a_one_line_error(tmp_path) -> None:
    res = cli("device", "status", "--link", "udp:127.0.0.1:9", "--timeout", "0.3")
    assert res.returncode == 2 and res.stderr.startswith("error: no answer to "), res.stderr
    res = cli("flash", tmp_path / "none.sfimg", "--link", "bogus")
    assert res.returncode == 2 and "error:" in res.stderr and "Traceback" not in res.stderr
