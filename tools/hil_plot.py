"""The plot of a hardware-in-the-loop run (``spikeflight hil run --plot``): one row per
scenario.

Left: the round-trip latency of every answered tick (ms, log scale) over the plant's run
time (tick x dt over all episodes), with the deadline (``DEADLINE_FRACTION x dt``) and the
events: episode starts (grey lines), lost ticks (grey spans), the device's safe mode
(orange spans, entry to recovery), corrupted frames (red ticks at the bottom), injected
upsets (purple lines) and each episode's first anomaly flag of the device's world-model
guard (green dotted lines). Right: the device's power over its mission time, the
chunk energies summed over a sliding window of the budget's ``window_s`` (default 2 s)
and divided by it, against the budget that window is held to: the highest in force
during it (``runtime.flight.window_limit``; a brown-out's cut takes a window to drain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hardware.hil.plant import DEADLINE_FRACTION
from runtime.flight import window_limit
from tools.plotting import pyplot, save_png


def _offsets(plant: list[dict[str, Any]]) -> dict[int, int]:
    """Run tick at which each episode (by seed) started."""
    out, k = {}, 0
    for e in plant:
        out[e["seed"]] = k
        k += e["steps"]
    return out


def _latency(ax: Any, name: str, result: dict[str, Any], dt: float) -> None:
    plant, dev = result["plant"], result["device"]
    start = _offsets(plant)
    bottom = ax.get_xaxis_transform()
    bad: list[int] = []
    for e in plant:
        k0 = start[e["seed"]]
        ax.axvline(k0 * dt, color="0.85", linewidth=0.8)
        t = (k0 + np.asarray(e["latency_ticks"], dtype=float)) * dt
        ax.plot(t, e["latencies_ms"], ".", markersize=2.5, color="tab:blue")
        for k in e["lost"]:
            ax.axvspan((k0 + k - 0.5) * dt, (k0 + k + 0.5) * dt, color="0.6", alpha=0.4,
                       linewidth=0)
        bad += [k0 + k for k in e["corrupted_sensor"] + e["corrupted_actuator"]]
    if bad:
        ax.plot(np.asarray(bad, dtype=float) * dt, np.zeros(len(bad)), "|", color="red",
                markersize=9, transform=bottom, label="corrupted frame")
    for ev in dev["link"]["events"]:
        if ev.get("event") == "safe_mode" and "recovered_tick" in ev:
            k0 = start.get(ev["seed"], 0)
            ax.axvspan((k0 + ev["tick"]) * dt, (k0 + ev["recovered_tick"]) * dt,
                       color="orange", alpha=0.35, linewidth=0)
    flags = [(start.get(e["seed"], 0) + e["first_anomaly_step"]) * dt
             for e in dev["episodes_detail"] if e.get("first_anomaly_step") is not None]
    for i, t in enumerate(flags):
        ax.axvline(t, color="tab:green", linewidth=1.2, linestyle=":",
                   label="first anomaly flag" if i == 0 else None)
    for i, u in enumerate(dev["memory"]["upsets"]):
        ax.axvline(u["tick"] * dt, color="purple", linewidth=0.8,
                   label="upset injected" if i == 0 else None)
    ax.axhline(1e3 * dt * DEADLINE_FRACTION, color="red", linestyle="--", linewidth=1,
               label="deadline (real clock)")
    ax.set_yscale("log")
    ax.set_xlabel("plant run time (s)")
    ax.set_ylabel("round trip (ms)")
    ax.set_title(f"{name}: latency and events", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")


def _power(ax: Any, name: str, result: dict[str, Any], dt: float) -> None:
    dev = result["device"]
    window = float(dev.get("window_s") or 2.0)
    t = np.asarray([x for e in dev["episodes_detail"] for x in e["chunk_t_s"]])
    j = np.asarray([x for e in dev["episodes_detail"] for x in e["chunk_energy_j"]])
    end = max(dev.get("mission_s", 0.0), float(t.max()) if t.size else 0.0)
    grid = np.arange(0.0, end + dt, dt)
    power = [j[(t > g - window) & (t <= g)].sum() / window for g in grid]
    ax.plot(grid, power, color="tab:green", label=f"chunk power ({window:g} s window)")
    if dev.get("budget_w") is not None:
        limit = [window_limit(dev["budget_w"], dev["budget_changes"], g - window, g)
                 for g in grid]
        ax.plot(grid, limit, color="red", linestyle="--", label="budget (the highest in "
                "force over the window)")
        for i, (t_cut, _) in enumerate(dev["budget_changes"]):
            ax.axvline(t_cut, color="red", linewidth=0.8, alpha=0.5,
                       label="budget change" if i == 0 else None)
    ax.set_xlabel("device mission time (s)")
    ax.set_ylabel(f"W ({dev.get('energy_source', '')})")
    ax.set_title(f"{name}: power against budget", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")


def figure(results: list[tuple[str, dict[str, Any]]], title: str, dt: float = 0.05) -> Any:
    """The matplotlib figure for ``results`` (scenario name, ``tools.hil.run_scenario``
    result): a row per scenario, latency and events left, power right."""
    fig, axes = pyplot().subplots(len(results), 2, figsize=(12, 3.2 * len(results)),
                             squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    for (ax, bx), (name, result) in zip(axes, results, strict=True):
        _latency(ax, name, result, dt)
        _power(bx, name, result, dt)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot(results: list[tuple[str, dict[str, Any]]], path: Path, title: str,
         dt: float = 0.05) -> None:
    """Write ``figure(results, title)`` to the PNG ``path`` (atomically)."""
    save_png(figure(results, title, dt), path)
