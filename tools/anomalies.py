"""Anomaly detection by an image's world-model guard, measured on injected faults
(``spikeflight world-model anomalies``).

For every fault of ``hardware.sim.faults`` (from step ``start`` of each episode) and for
nominal episodes, the image flies ``episodes`` held-out seeds with its guard. An episode
with a fault is *detected* when the guard's first flag comes at or after ``start``; its
*delay* is the steps from ``start`` to that flag (x 0.05 s). A flag before ``start``, or
any flag in a nominal episode, is a *false alarm*. Episodes that end before ``start``
(a quick success) carry no fault and are left out of the fault's rates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.sim.faults import FAULTS, FaultEnv
from hardware.sim.registry import make_env
from runtime.executive import CONTROL_DT_S, EpisodeResult
from runtime.flight import FlightConfig, fly
from runtime.loader import FlightPolicy


def _row(fault: str, results: list[EpisodeResult], start: int) -> dict[str, Any]:
    if fault == "nominal":
        alarms = sum(r.first_anomaly_step is not None for r in results)
        return {"fault": fault, "episodes": len(results), "faulted": 0, "detected": 0,
                "false_alarms": alarms, "false_alarm_rate": alarms / max(len(results), 1),
                "detection_rate": None, "delay_s_median": None, "delay_s_max": None,
                "success": sum(r.success for r in results)}
    faulted = [r for r in results if r.steps > start]
    early = [r for r in faulted if r.first_anomaly_step is not None
             and r.first_anomaly_step < start]
    hit = [r for r in faulted if r.first_anomaly_step is not None
           and r.first_anomaly_step >= start]
    delays = [(r.first_anomaly_step - start) * CONTROL_DT_S for r in hit]
    return {"fault": fault, "episodes": len(results), "faulted": len(faulted),
            "detected": len(hit), "false_alarms": len(early),
            "false_alarm_rate": len(early) / max(len(faulted), 1),
            "detection_rate": len(hit) / len(faulted) if faulted else None,
            "delay_s_median": float(np.median(delays)) if delays else None,
            "delay_s_max": max(delays) if delays else None,
            "success": sum(r.success for r in results)}


def measure(policy: FlightPolicy, task: str, episodes: int, seed: int, start: int,
            backend: str = "onnx-fixed", faults: tuple[str, ...] = FAULTS,
            on_episode: Callable[[str, EpisodeResult], None] | None = None
            ) -> list[dict[str, Any]]:
    """One row per fault (and ``nominal`` first): detection, delay, false alarms."""
    if not policy.manifest.get("world_model"):
        raise ValueError("the image carries no world model (compile it with --world-model)")
    rows = []
    for fault in ("nominal", *faults):
        env = make_env(task)
        if fault != "nominal":
            env = FaultEnv(env, fault, start)
        results: list[EpisodeResult] = []

        def done(res: EpisodeResult, fault: str = fault,
                 results: list[EpisodeResult] = results) -> None:
            results.append(res)
            if on_episode is not None:
                on_episode(fault, res)

        try:
            fly(policy, env, FlightConfig(backend=backend, record_phases=False), episodes,
                seed, on_episode=done)
        finally:
            env.close()
        rows.append(_row(fault, results, start))
    return rows
