"""Fly a verified image for a number of episodes and summarise: the mission runner behind
``spikeflight run``, ``make demo`` and the runtime benchmarks.

The summary holds success (Wilson 95% interval), per-chunk latency (median, p99), energy
per chunk and per episode and the average power, all labelled with their source (the
energy model ``cmos45-horowitz2014``, or the replayed board trace the governor read,
``FlightConfig.power_trace``), and budget compliance: the governor's consecutive windows
of ``window_s`` and how many exceeded the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.energy import CMOS45
from hardware.errors import SpikeflightError
from hardware.stats import wilson_interval
from runtime.backends import FallbackChain, chain_for
from runtime.executive import CONTROL_DT_S, EpisodeResult, Executive, operating_points
from runtime.governor import Budget, PowerGovernor
from runtime.loader import FlightPolicy
from runtime.power_reading import TraceReading
from runtime.telemetry import Telemetry
from runtime.watchdog import Watchdog
from runtime.world_model import NoGuard, guard_for


@dataclass
class FlightConfig:
    backend: str = "auto"
    budget_w: float | None = None
    budget_j: float | None = None
    window_s: float = 2.0
    deadline_ms: float | None = None
    telemetry: Path | None = None
    control_dt_s: float = CONTROL_DT_S
    record_phases: bool = True  # per-phase records in telemetry (power profiling)
    power_trace: Path | None = None  # the governor's reading (runtime.power_reading)
    world_model: bool = True  # fly the image's world-model guard if it carries one
    candidates: int = 1  # candidate chunks per plan, one call; the first not vetoed flies

    def __post_init__(self) -> None:
        """Check budgets, deadline and trace now, so bad input fails before anything
        flies."""
        self.budget()
        if self.deadline_ms is not None:
            Watchdog(self.deadline_ms / 1e3)
        if self.candidates < 1:
            raise SpikeflightError(f"candidates per chunk must be >= 1, got {self.candidates}")
        self.reading()

    def reading(self) -> TraceReading | None:
        return TraceReading(self.power_trace) if self.power_trace is not None else None

    def budget(self) -> Budget | None:
        if self.budget_w is None and self.budget_j is None:
            return None
        return Budget(watts=self.budget_w, window_s=self.window_s,
                      joules_per_episode=self.budget_j)


def fly(policy: FlightPolicy, env: Any, cfg: FlightConfig, episodes: int, seed0: int,
        on_episode: Callable[[EpisodeResult], None] | None = None,
        telemetry: Telemetry | None = None) -> dict[str, Any]:
    """Run ``episodes`` episodes with seeds ``seed0 ..`` and return the summary dict;
    ``telemetry``: an open recorder to use instead of one on ``cfg.telemetry``."""
    return fly_seeds(policy, env, cfg, range(seed0, seed0 + episodes), on_episode, telemetry)


def fly_seeds(policy: FlightPolicy, env: Any, cfg: FlightConfig, seeds: Iterable[int],
              on_episode: Callable[[EpisodeResult], None] | None = None,
              telemetry: Telemetry | None = None, chain: FallbackChain | None = None,
              plausible: Callable[[np.ndarray, list[float]], bool] | None = None
              ) -> dict[str, Any]:
    """``fly`` over the episode seeds ``seeds`` (an iterable that may be a generator, e.g.
    the episodes a hardware-in-the-loop plant announces); ``chain``: backends the caller
    made (default: ``chain_for`` the configured backend); ``plausible``: the executive's
    output check."""
    governor = None
    with telemetry or Telemetry(cfg.telemetry) as tel:
        budget = cfg.budget()
        watchdog = (Watchdog(cfg.deadline_ms / 1e3, on_event=tel.event)
                    if cfg.deadline_ms is not None else None)
        chain = chain or chain_for(policy, cfg.backend, on_event=tel.event)
        backends = [chain.current.name]
        try:
            guard = guard_for(policy) if cfg.world_model else NoGuard()
            points = operating_points(policy, cfg.candidates, not isinstance(guard, NoGuard))
            if budget is not None:
                governor = PowerGovernor(points, budget, control_dt_s=cfg.control_dt_s,
                                         on_event=tel.event)
            ex = Executive(policy, chain, tel, governor, watchdog, guard=guard,
                           control_dt_s=cfg.control_dt_s, record_phases=cfg.record_phases,
                           plausible=plausible, reading=cfg.reading(), points=points)
            results = []
            for seed in seeds:
                res = ex.run_episode(env, seed)
                results.append(res)
                if chain.current.name not in backends:
                    backends.append(chain.current.name)
                if on_episode is not None:
                    on_episode(res)
        finally:
            chain.close()
        fallbacks = len(tel.events("fallback"))
    out = summarise(results, policy, cfg, governor, ex.t, backends, fallbacks, ex.budget_log,
                    ex.energy_source)
    out["world_model"] = not isinstance(guard, NoGuard)
    return out


def window_limit(budget_w: float, budget_log: Iterable[Sequence[Any]], t0: float,
                 t1: float) -> float:
    """The highest budget (W) in force during the window [t0, t1) (s), from the nominal
    ``budget_w`` and the ``(mission s, W)`` changes in ``budget_log``: a window that
    straddles a cut still holds the energy spent before it, and one that straddles a
    restoration may spend up to the restored budget."""
    watts, during = budget_w, []
    for t, w in budget_log:
        if w is None:
            continue
        if t <= t0 + 1e-9:
            watts = w
        elif t < t1 - 1e-9:
            during.append(w)
    return max([watts, *during])


def summarise(results: list[EpisodeResult], policy: FlightPolicy, cfg: FlightConfig,
              governor: PowerGovernor | None, t_end: float, backends: list[str],
              fallbacks: int, budget_log: list[tuple[float, float | None]] = (),
              energy_source: str = CMOS45.name) -> dict[str, Any]:
    """The summary dict; a window is over budget when its average power exceeds the
    highest budget in force during it (``budget_log``: brown-outs and restorations)."""
    n = len(results)
    wins = sum(r.success for r in results)
    lat = np.concatenate([r.latencies_ms for r in results]) if results else np.zeros(0)
    chunks = sum(r.chunks for r in results)
    energy = sum(r.energy_j for r in results)
    steps = sum(r.steps for r in results)
    points: dict[str, int] = {}
    for r in results:
        for k, v in r.points.items():
            points[k] = points.get(k, 0) + v
    rates = [x for r in results for x in r.firing_rates]
    out: dict[str, Any] = {
        "task": policy.task, "target": policy.target, "episodes": n, "successes": wins,
        "success_rate": wins / n if n else 0.0, "success_ci95": list(wilson_interval(wins, n)),
        "backends": backends, "fallbacks": fallbacks,
        "deadline_misses": sum(r.deadline_misses for r in results),
        "safe_steps": sum(r.safe_steps for r in results), "chunks": chunks, "steps": steps,
        "anomalies": sum(r.anomalies for r in results),
        "vetoes": sum(r.vetoes for r in results),
        "mission_s": steps * cfg.control_dt_s,
        "latency_ms_p50": float(np.median(lat)) if lat.size else float("nan"),
        "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "energy_source": energy_source,
        "energy_j_per_chunk": energy / chunks if chunks else 0.0,
        "energy_j_per_episode": energy / n if n else 0.0,
        "average_w": energy / (steps * cfg.control_dt_s) if steps else 0.0,
        "firing_rates": np.mean(rates, axis=0).tolist() if rates else [],
        "operating_points": points, "budget_w": cfg.budget_w,
        "budget_j_per_episode": cfg.budget_j, "window_s": cfg.window_s,
        "windows": 0, "windows_over_budget": 0, "max_window_w": 0.0,
        "budget_changes": [list(c) for c in budget_log],
    }
    if governor is not None and cfg.budget_w is not None:
        windows = governor.windows(t_end)
        over = [w for w in windows
                if w[3] > window_limit(cfg.budget_w, budget_log, w[0], w[1]) * (1 + 1e-9)]
        out.update(windows=len(windows), windows_over_budget=len(over),
                   max_window_w=max((w[3] for w in windows), default=0.0))
    return out
