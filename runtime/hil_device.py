"""The device side of a hardware-in-the-loop run: the onboard executive flies its image
on a plant it only knows through the link (``hardware.hil.frames``).

``LinkEnv`` looks to the executive like a gymnasium environment: ``episodes()`` yields
the seed of every ``start`` frame the plant sends, ``reset`` returns that frame's
observation and ``step(action)`` sends the action as the ``actuator`` answer to the last
sensor frame and returns the next one's observation. Only frames that pass the CRC and
payload checks reach the executive; bad ones are counted and dropped.

Link loss: a sensor frame whose tick is more than one after the last one means ticks were
lost; the step reports ``info["replan"]`` (the executive drops the rest of its chunk and
plans on the fresh observation). When ``LOSS_TICKS`` or more ticks went silent the device
was in safe mode (no commands: the plant holds position) from tick ``last + LOSS_TICKS``
until the tick that came through: a ``safe_mode`` event in the counters (entry and
recovery tick) records it. With ``clock = "real"`` the entry is also
noticed live, ``LOSS_TICKS`` control periods after the last frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from hardware.hil import frames
from hardware.hil.frames import BadFrame, Frame
from hardware.hil.link import FrameLink, LinkClosed
from runtime.backends import chain_for
from runtime.flight import FlightConfig, fly_seeds
from runtime.loader import FlightPolicy
from runtime.scrubber import WeightMemory

LOSS_TICKS = 3  # silent control ticks before the device counts the link as lost
SILENT_PLANT_S = 600.0  # a plant that sends nothing in this long has gone
REPORT_ACK_S = 10.0  # wait for the plant's acknowledgement of the report this long


@dataclass
class LinkCounters:
    frames_received: int = 0
    bad_frames: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    delivered: list[list[int]] = field(default_factory=list)  # (seed, tick) handed on
    gaps: int = 0
    lost_ticks: int = 0
    safe_mode_entries: int = 0
    safe_mode_exits: int = 0
    safe_mode_ticks: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class LinkEnv:
    """A plant seen through ``link`` (see the module docstring)."""

    def __init__(self, link: FrameLink, clock: str = "virtual",
                 on_tick: Callable[[], None] | None = None) -> None:
        self.link, self.clock = link, clock
        self.on_tick = on_tick or (lambda: None)
        self.c = LinkCounters()
        self.unwrapped = self
        self.spec = None
        self.MAX_STEPS = 0
        self.action_space = SimpleNamespace(shape=(0,))
        self.dt = 0.05
        self._queue: deque[Frame] = deque()
        self._start: Frame | None = None
        self._seed = 0
        self._tick = 0

    # --- frames --------------------------------------------------------------------------
    def _next(self) -> Frame:
        """The next good frame from the plant (bad ones counted and dropped)."""
        timeout = LOSS_TICKS * self.dt if self.clock == "real" else SILENT_PLANT_S
        silent = 0.0
        while not self._queue:
            got = self.link.recv(timeout)
            if not got:
                silent += timeout
                if self.clock == "real" and silent == timeout:
                    self.c.events.append({"event": "safe_mode", "reason": "link loss",
                                          "seed": self._seed, "tick": self._tick + LOSS_TICKS,
                                          "live": True})
                if silent >= SILENT_PLANT_S:
                    raise LinkClosed(f"{self.link.path}: nothing from the plant in "
                                     f"{SILENT_PLANT_S:.0f} s")
                continue
            for f in got:
                if isinstance(f, BadFrame):
                    self.c.bad_frames += 1
                    self.c.reasons[str(f)] = self.c.reasons.get(str(f), 0) + 1
                else:
                    self.c.frames_received += 1
                    self._queue.append(f)
        return self._queue.popleft()

    # --- gymnasium-like API --------------------------------------------------------------
    def episodes(self) -> Iterator[int]:
        """Seeds of the episodes the plant starts, until it says ``bye``."""
        while True:
            f = self._next()
            if f.type == "bye":
                return
            if f.type != "start":
                continue  # the tail of an episode that already ended here
            self._start = f
            self._seed, self._tick = int(f["seed"]), 0
            self.MAX_STEPS = int(f["max_steps"])
            self.action_space = SimpleNamespace(shape=(int(f["act_dim"]),))
            self.dt = float(f["dt"])
            yield self._seed

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if self._start is None or (seed is not None and seed != self._seed):
            raise RuntimeError(f"reset({seed}) without the plant's start frame for it")
        start, self._start = self._start, None
        self.c.delivered.append([self._seed, 0])
        return start["obs"], {"budget_scale": float(start.fields.get("budget_scale", 1.0))}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.link.send(frames.encode("actuator", self._tick, self._tick * self.dt,
                                     action=np.asarray(action, np.float64)))
        while True:
            f = self._next()
            if f.type in ("start", "bye"):  # the end of this episode was lost on the link
                self._queue.appendleft(f)
                return np.zeros(0), 0.0, False, True, {"success": False, "link_end_lost": True}
            if f.type == "sensor" and f.seq > self._tick:
                break
        gap = f.seq - self._tick - 1
        for _ in range(gap + 1):  # the device's background work runs every control tick
            self.on_tick()
        info: dict[str, Any] = {"success": bool(f["success"]),
                                "budget_scale": float(f.fields.get("budget_scale", 1.0))}
        if gap > 0:
            self.c.gaps += 1
            self.c.lost_ticks += gap
            info["replan"] = True
            if gap >= LOSS_TICKS:
                entered = self._tick + LOSS_TICKS
                self.c.safe_mode_entries += 1
                self.c.safe_mode_exits += 1
                self.c.safe_mode_ticks += f.seq - entered
                self.c.events.append({"event": "safe_mode", "reason": "link loss",
                                      "seed": self._seed, "tick": entered,
                                      "recovered_tick": f.seq, "lost_ticks": gap})
        self._tick = f.seq
        self.c.delivered.append([self._seed, f.seq])
        return f["obs"], 0.0, bool(f["term"]), bool(f["trunc"]), info


def serve_hil(policy: FlightPolicy, link: FrameLink, cfg: FlightConfig,
              clock: str = "virtual", seu_rate_hz: float = 0.0, scrub_ticks: int = 10,
              seed: int = 0) -> dict[str, Any]:
    """Fly ``policy`` on the plant behind ``link`` until it says ``bye``, its weight memory
    scrubbed every ``scrub_ticks`` ticks (``runtime.scrubber``; ``seu_rate_hz`` > 0 injects
    upsets); answer with a ``report`` frame holding the summary (``runtime.flight``), the
    per-episode results, the link and memory counters, and return that summary."""
    episodes: list[dict[str, Any]] = []
    chain = chain_for(policy, cfg.backend)

    def restart() -> None:
        chain.current.close()
        chain.current.start()

    memory = WeightMemory(policy, restart, scrub_ticks, seu_rate_hz, seed=seed)
    env = LinkEnv(link, clock, on_tick=memory.on_tick)

    def on_episode(res: Any) -> None:
        episodes.append({"seed": res.seed, "success": res.success, "steps": res.steps,
                         "chunks": res.chunks, "energy_j": res.energy_j,
                         "safe_steps": res.safe_steps, "deadline_misses": res.deadline_misses,
                         "chunk_t_s": res.chunk_t_s, "chunk_energy_j": res.chunk_energy_j,
                         "vetoes": res.vetoes, "anomalies": res.anomalies,
                         "first_anomaly_step": res.first_anomaly_step})

    summary = fly_seeds(policy, env, cfg, env.episodes(), on_episode=on_episode, chain=chain,
                        plausible=memory.plausible)
    summary = {**summary, "episodes_detail": episodes, "link": vars(env.c),
               "memory": memory.c.to_dict()}
    link.send(frames.encode("report", 0, 0.0, summary=summary))
    with suppress(LinkClosed):  # a pty drops what the plant has not read once this end
        link.recv(REPORT_ACK_S)  # closes: wait for its acknowledgement
    return summary
