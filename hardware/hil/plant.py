"""The plant side of a hardware-in-the-loop run: steps a task environment at the control
rate and exchanges frames with the device.

Per episode: ``start`` (seed, first observation) is sent and answered by ``actuator``
seq 0; then every tick k = 1, 2, ... the plant applies the action it received for tick
k - 1 (or holds position: no motion, the gripper keeps its last command, when none
arrived), steps the environment and sends ``sensor`` seq k; the episode ends with the
sensor frame that reports it terminated or was truncated.

Clocks: ``virtual`` runs in lock-step as fast as the two sides go (the plant waits for
the answer to every frame it knows was delivered; the link is simulated here, so it
knows), ``real`` runs at the control rate in wall time: tick k starts ``k * dt`` after the
episode's start, and an answer that has not arrived ``DEADLINE_FRACTION * dt`` into the
tick is a deadline miss (hold position). The same seed gives the same episode in both
clocks when no answer is late.

Measured per episode: round-trip latency of every answered frame (send to receipt, ms),
deadline misses, ticks held, frames the plant corrupted or lost (by tick) and frames it
received with a bad CRC, and the SHA-256 of the actions it applied (bit-identity checks).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.hil import frames
from hardware.hil.frames import BadFrame, Frame
from hardware.hil.link import FrameLink, LinkClosed
from hardware.hil.scenarios import Faults, Scenario

DEADLINE_FRACTION = 0.8
SILENT_DEVICE_S = 60.0  # virtual clock: a device that does not answer in this long is dead
CLOCKS = ("virtual", "real")


@dataclass
class PlantEpisode:
    seed: int
    success: bool = False
    steps: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    latency_ticks: list[int] = field(default_factory=list)  # the tick of every latency
    deadline_misses: int = 0
    held_ticks: int = 0
    corrupted_sensor: list[int] = field(default_factory=list)
    corrupted_actuator: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    bad_frames: int = 0
    impulses: int = 0
    actions_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Plant:
    """``run(seeds)`` flies the device on ``env`` over ``link`` under ``scenario``."""

    def __init__(self, link: FrameLink, env: Any, scenario: Scenario, clock: str = "virtual",
                 dt: float = 0.05) -> None:
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
        self.link, self.env, self.s, self.clock, self.dt = link, env, scenario, clock, dt
        self.report: dict[str, Any] | None = None
        self.run_ticks = 0  # control ticks over all episodes so far

    def run(self, seeds: Iterable[int],
            on_episode: Callable[[PlantEpisode], None] | None = None) -> list[PlantEpisode]:
        out = []
        for seed in seeds:
            ep = self.episode(int(seed))
            out.append(ep)
            if on_episode is not None:
                on_episode(ep)
        return out

    def finish(self, timeout_s: float = SILENT_DEVICE_S) -> dict[str, Any]:
        """Send ``bye`` and return the device's ``report`` summary (acknowledged with a
        second ``bye``, seq 1, after which the device stops)."""
        self.link.send(frames.encode("bye", 0, 0.0))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for f in self.link.recv(deadline - time.monotonic()):
                if isinstance(f, Frame) and f.type == "report":
                    self.report = f["summary"]
                    self.link.send(frames.encode("bye", 1, 0.0))  # the acknowledgement
                    return self.report
        raise LinkClosed(f"{self.link.path}: no report from the device in {timeout_s:.0f} s")

    def episode(self, seed: int) -> PlantEpisode:
        env, faults = self.env, Faults(self.s, seed)
        ep = PlantEpisode(seed=seed)
        obs, _ = env.reset(seed=seed)
        limit = getattr(env.unwrapped, "MAX_STEPS", None) or env.spec.max_episode_steps
        act_dim = env.action_space.shape[0]
        held = np.zeros(act_dim)
        digest = hashlib.sha256()
        t_start = time.monotonic()
        sent = self._send_timed(frames.encode(
            "start", 0, 0.0, seed=seed, obs=faults.sense(obs), max_steps=int(limit),
            act_dim=int(act_dim), dt=self.dt, budget_scale=self.s.budget_scale(self.run_ticks)),
            tick=0, t_start=t_start)
        delivered, k = True, 0
        while True:
            action = self._answer(k, delivered, sent, t_start, faults, ep)
            if action is None:
                ep.held_ticks += 1
                action = held
            action = faults.actuate(action)
            held = np.zeros(act_dim)
            held[-1] = action[-1]
            digest.update(np.ascontiguousarray(action, "<f8").tobytes())
            obs, _, term, trunc, info = env.step(action)
            ep.impulses += faults.disturb(env, k)
            k += 1
            self.run_ticks += 1
            ep.steps = k
            done = bool(term or trunc or k >= limit)
            success = bool(info.get("success", term)) if done else False
            payload = frames.payload("sensor", k, k * self.dt, obs=faults.sense(obs),
                                     term=bool(term), trunc=bool(trunc or k >= limit),
                                     success=success,
                                     budget_scale=self.s.budget_scale(self.run_ticks))
            delivered = not self.s.lost(k)
            if not delivered:
                ep.lost.append(k)
            elif faults.corrupt():
                payload = faults.flip(payload)
                ep.corrupted_sensor.append(k)
                delivered = False
            if not self.s.lost(k):
                sent = self._send_timed(frames.wire(payload), k, t_start)
            if done:
                ep.success = success
                ep.actions_sha256 = digest.hexdigest()
                return ep

    def _send_timed(self, data: bytes, tick: int, t_start: float) -> float:
        """Send at tick ``tick``'s start (real clock: waits for it); the send time."""
        if self.clock == "real":
            wait = t_start + tick * self.dt - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        t = time.monotonic()
        self.link.send(data)
        return t

    def _answer(self, k: int, delivered: bool, sent: float, t_start: float, faults: Faults,
                ep: PlantEpisode) -> np.ndarray | None:
        """The action the device sent for tick ``k``, or ``None`` (hold position)."""
        if self.clock == "virtual" and not delivered:
            return None
        deadline = (t_start + (k + DEADLINE_FRACTION) * self.dt if self.clock == "real"
                    else time.monotonic() + SILENT_DEVICE_S)
        while True:
            left = deadline - time.monotonic()
            got = self.link.recv(left) if left > 0 else []
            if not got:
                if self.clock == "virtual":
                    raise LinkClosed(f"{self.link.path}: the device did not answer tick {k} "
                                     f"in {SILENT_DEVICE_S:.0f} s")
                if delivered:
                    ep.deadline_misses += 1
                return None
            for f in got:
                if isinstance(f, BadFrame):
                    ep.bad_frames += 1
                    if self.clock == "virtual":
                        return None
                    continue
                if f.type != "actuator" or f.seq != k:
                    continue  # late answer to an earlier tick (real clock)
                if faults.corrupt():
                    ep.corrupted_actuator.append(k)
                    try:
                        frames.decode_payload(faults.flip(frames.payload(
                            "actuator", f.seq, f.t, **f.fields)))
                    except BadFrame:
                        ep.bad_frames += 1
                        return None
                ep.latencies_ms.append((time.monotonic() - sent) * 1e3)
                ep.latency_ticks.append(k)
                return f["action"]
