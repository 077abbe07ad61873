"""Success and budget compliance of one image under shrinking power budgets.

The unconstrained run (the best operating point throughout) sets the reference average
power P; the governor then flies the same seeds under ``fraction x P`` for each fraction
(window ``window_s``). Each row: success, average power, windows over budget (must be 0),
chunks per operating point and the steps spent in safe mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardware.sim.registry import make_env
from runtime.flight import FlightConfig, fly
from runtime.loader import load_flight_policy


def budget_sweep(image: Path, pubkey: Path, episodes: int,
                 fractions: tuple[float, ...] = (1.0, 0.5, 0.25, 0.05),
                 window_s: float = 1.0, seed0: int = 10_000,
                 backend: str = "onnx-fixed") -> list[dict[str, Any]]:
    policy = load_flight_policy(image, pubkey)
    env = make_env(policy.task)
    try:
        free = fly(policy, env, FlightConfig(backend=backend), episodes, seed0)
        rows = [{"budget": "none", **free}]
        for frac in fractions:
            cfg = FlightConfig(backend=backend, budget_w=frac * free["average_w"],
                               window_s=window_s)
            rows.append({"budget": f"{frac:.0%}", **fly(policy, env, cfg, episodes, seed0)})
    finally:
        env.close()
    return rows
