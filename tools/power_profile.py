"""``spikeflight power profile``: fly an image and account its energy per chunk, per
episode and per phase, under energy models and, where one exists, a real power sensor.

Model figures come from the runtime's per-phase operation counts (``runtime.phases``) and
carry the model's name; sensor figures integrate the sampled power/energy over each
chunk's wall-clock window (the backend call's share split across encode and denoising
steps by their operations, as the runtime does for time) and carry the label ``sensor``
with the sensor's source. Mission time is simulated (20 Hz control steps), so model power
is energy per mission second; the sensor measures this process's host.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from hardware.energy_models import EnergyModel, PhaseCounts
from runtime.flight import FlightConfig, fly
from runtime.loader import FlightPolicy
from runtime.telemetry import Telemetry

RECORD_VERSION = 1


def _phase_group(name: str) -> str:
    return "denoise" if name.startswith("denoise[") else name


def profile(policy: FlightPolicy, env: Any, models: list[EnergyModel], episodes: int,
            seed0: int, cfg: FlightConfig, sampler: Any = None,
            on_episode: Any = None) -> dict[str, Any]:
    """The profile record (JSON-safe): summary, per-model and sensor totals, per-phase
    energies, per-chunk rows and the sensor's dropped samples."""
    tel = Telemetry(None, ring_size=10**7)
    if sampler is not None:
        sampler.start()
    t_start = time.perf_counter()
    try:
        summary = fly(policy, env, cfg, episodes, seed0, on_episode=on_episode, telemetry=tel)
    finally:
        if sampler is not None:
            sampler.stop()
    t_end = time.perf_counter()
    rows, episode_of = [], 0
    per_episode: dict[str, list[float]] = defaultdict(lambda: [0.0] * episodes)
    phase_totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sensor_busy = 0.0
    for rec in tel.records():
        if rec["name"] == "episode_end":
            episode_of += 1
            continue
        if rec["name"] != "phases":
            continue
        phases = [PhaseCounts(**p) for p in rec["value"]]
        row: dict[str, Any] = {"episode": episode_of, "mission_s": rec["mission_s"],
                               "seconds": sum(p.seconds for p in phases if p.compute)}
        for m in models:
            joules = [m.joules(p) for p in phases]
            total = None if any(j is None for j in joules) else float(sum(joules))
            row[m.name] = total
            if total is not None:
                per_episode[m.name][episode_of] += total
                for p, j in zip(phases, joules, strict=True):
                    phase_totals[m.name][_phase_group(p.name)] += j
        if sampler is not None:
            t0, t2 = rec["wall_s"]
            measured = float(sampler.energy_between(t0, t2))
            row["sensor"] = measured
            per_episode["sensor"][episode_of] += measured
            sensor_busy += measured
            work = [p for p in phases if p.compute and p.name not in ("decode", "world_model")]
            ops = np.array([p.analog_macs + p.ann_macs + p.synops for p in work])
            share = ops / ops.sum() if ops.sum() else np.full(len(work), 1 / len(work))
            for p, w in zip(work, share, strict=True):
                phase_totals["sensor"][_phase_group(p.name)] += measured * float(w)
        rows.append(row)
    sources = [m.name for m in models] + (["sensor"] if sampler is not None else [])
    totals = {}
    mission_s = summary["mission_s"]
    for src in sources:
        vals = [r[src] for r in rows if r.get(src) is not None]
        if not vals:
            totals[src] = None
            continue
        totals[src] = {"j_per_chunk": float(np.mean(vals)),
                       "j_per_episode": float(np.mean(per_episode[src])),
                       "j_total": float(np.sum(vals)), "phases": dict(phase_totals[src]),
                       "average_w": float(np.sum(vals)) / mission_s if mission_s else 0.0}
    if sampler is not None:
        whole = float(sampler.energy_between(t_start, t_end))
        totals["sensor"]["phases"]["idle"] = max(whole - sensor_busy, 0.0)
        totals["sensor"]["wall_s"] = t_end - t_start
        totals["sensor"]["average_w"] = whole / (t_end - t_start)
    return {"version": RECORD_VERSION, "image_sha256": policy.image.digest,
            "task": policy.task, "target": policy.target, "kind": policy.manifest["kind"],
            "summary": summary, "models": {m.name: m.source for m in models},
            "sensor": ({"source": getattr(sampler, "source", "sensor"),
                        "dropped_samples": int(getattr(sampler, "dropped", 0)),
                        "samples": len(sampler.samples())} if sampler is not None else None),
            "mission_s": mission_s, "totals": totals, "chunks": rows}
