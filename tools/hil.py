"""Hardware-in-the-loop runs: a device agent process flies its confirmed image against a
plant (this process) over a framed link, once per fault scenario.

``provision`` flashes an image onto a fresh device storage the way an operator does
(``device serve`` on UDP loopback, ``flash --confirm``), so the run starts from a flashed,
booted, self-tested and confirmed device. ``run_scenario`` starts ``spikeflight device
fly`` on that storage (a pty or UDP link), steps the task's environment as the plant
(``hardware.hil.plant``) for the given seeds under the scenario's faults, and returns the
plant's per-episode records with the device's own report.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hardware.errors import SpikeflightError
from hardware.hil.link import connect
from hardware.hil.plant import Plant, PlantEpisode
from hardware.hil.scenarios import Scenario

SPIKEFLIGHT = str(Path(sys.executable).parent / "spikeflight")
START_TIMEOUT_S = 180.0  # boot: verify the image and run its golden-vector self-test


class DeviceProcess:
    """``spikeflight device ...`` as a child process; ``link`` is what it listens on."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log_path = args, log
        self.proc: subprocess.Popen | None = None
        self.link = ""

    def __enter__(self) -> DeviceProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([SPIKEFLIGHT, "device", *self.args],
                                         stdout=subprocess.PIPE, stderr=log)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise SpikeflightError(f"the device did not start: {tail[0] if tail else line!r}")
        self.link = line.split("listening on ", 1)[1].strip()
        return self

    def stop(self, grace_s: float = 0.0, timeout_s: float = 30.0) -> int | None:
        """Wait ``grace_s`` for the process to end by itself, then SIGTERM it (SIGKILL after
        ``timeout_s``); its exit code."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def provision(image: Path, pubkey: Path, storage: Path, target: str,
              backend: str = "auto") -> dict[str, Any]:
    """Flash ``image`` onto the (new or empty) device ``storage`` and confirm it."""
    from tools.flash import flash

    storage.mkdir(parents=True, exist_ok=True)
    args = ["serve", "--link", "udp:127.0.0.1:0", "--storage", str(storage), "--pubkey",
            str(pubkey), "--target", target, "--backend", backend]
    with DeviceProcess(args, storage.parent / f"{storage.name}.serve.log") as dev:
        res = flash(image, dev.link, "confirm", False, timeout=30.0)
    if res["result"] not in ("confirmed", "already running"):
        raise SpikeflightError(f"flashing {image} failed: {res['result']} "
                               f"({res.get('boot', {}).get('reason', '')})")
    return res


BROWNOUT_HEADROOM = 1.2  # default budget: the dearest operating point's power x this


def default_budget_w(manifest: dict[str, Any], dt: float = 0.05) -> float:
    """A power budget (W) the image's dearest operating point flies under with headroom
    (``BROWNOUT_HEADROOM``): what a brown-out scenario cuts when no budget is given."""
    points = manifest.get("operating_points") or []
    if not points:
        raise SpikeflightError("the image has no operating points: give --budget-w")
    return BROWNOUT_HEADROOM * max(p["energy_j"] / (p["replan"] * dt) for p in points)


def run_scenario(scenario: Scenario, storage: Path, pubkey: Path, target: str, task: str,
                 seeds: Iterable[int], clock: str = "virtual", link: str = "serial:pty",
                 backend: str = "auto", budget_w: float | None = None,
                 on_episode: Callable[[PlantEpisode], None] | None = None,
                 power_trace: Path | None = None, world_model: bool = True,
                 candidates: int = 1) -> dict[str, Any]:
    """Fly ``seeds`` under ``scenario``; ``{"plant": [episode dicts], "device": report}``;
    ``power_trace``: the board trace the device's governor reads (``device fly
    --power-trace``); ``world_model``, ``candidates``: the device's guard and screening
    (``device fly --no-world-model``, ``--screen``)."""
    from hardware.sim.faults import FaultEnv
    from hardware.sim.registry import make_env

    args = ["fly", "--link", link, "--storage", str(storage), "--pubkey", str(pubkey),
            "--target", target, "--backend", backend, "--clock", clock]
    if budget_w is not None:
        args += ["--budget-w", repr(budget_w)]
    if scenario.seu_rate_hz:
        args += ["--inject-seu-hz", repr(scenario.seu_rate_hz)]
    if power_trace is not None:
        args += ["--power-trace", os.fspath(Path(power_trace).resolve())]
    if not world_model:
        args.append("--no-world-model")
    args += ["--screen", str(candidates)]
    env = make_env(task)
    if scenario.plant_fault:
        env = FaultEnv(env, scenario.plant_fault, scenario.fault_start)
    log = storage.parent / f"{storage.name}.{scenario.name}.log"
    try:
        with DeviceProcess(args, log) as dev:
            port = connect(dev.link)
            try:
                plant = Plant(port, env, scenario, clock)
                episodes = plant.run(seeds, on_episode)
                report = plant.finish()
            finally:
                port.close()
            code = dev.stop(grace_s=30.0)
    finally:
        env.close()
    if code != 0:
        raise SpikeflightError(f"the device exited with {code}; its log: {log}")
    return {"plant": [e.to_dict() for e in episodes], "device": report,
            "device_log": os.fspath(log)}
