"""Rendering, budget verdicts, exports and plots of a power profile record.

Budget verdicts (exit codes of ``spikeflight power profile`` and ``power report``):
the primary figure is the sensor's where a sensor was read, otherwise the first model's.
For each budget given (average watts, joules per episode) the figure is

- ``PASS`` at or below ``warn_at`` x budget (exit 0),
- ``WARN`` above that but within the budget (exit 3),
- ``FAIL`` above the budget (exit 4), with the excess in units and percent.

The exit code is the worst verdict's. Bad input exits 2 as everywhere in the CLI.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from tools.json_out import dumps
from tools.progress import console

EXIT = {"PASS": 0, "WARN": 3, "FAIL": 4}


def primary_source(record: dict[str, Any]) -> str:
    if record.get("sensor") and record["totals"].get("sensor"):
        return "sensor"
    return next(iter(record["models"]))


def verdicts(record: dict[str, Any], budget_w: float | None, budget_j: float | None,
             warn_at: float = 0.9) -> list[dict[str, Any]]:
    """One verdict per budget given, on the primary source's figures."""
    if not 0 < warn_at <= 1:
        raise SpikeflightError(f"--warn-at must be in (0, 1], got {warn_at}")
    src = primary_source(record)
    tot = record["totals"][src]
    out = []
    for what, budget, value, unit in (("average power", budget_w, tot["average_w"], "W"),
                                      ("energy per episode", budget_j, tot["j_per_episode"],
                                       "J")):
        if budget is None:
            continue
        if budget <= 0:
            raise SpikeflightError(f"budget for {what} must be > 0 {unit}, got {budget}")
        level = "PASS" if value <= warn_at * budget else "WARN" if value <= budget else "FAIL"
        excess = value - budget
        out.append({"what": what, "source": src, "value": value, "budget": budget,
                    "unit": unit, "verdict": level, "excess": max(excess, 0.0),
                    "excess_pct": 100.0 * max(excess, 0.0) / budget})
    return out


def exit_code(found: list[dict[str, Any]]) -> int:
    return max((EXIT[v["verdict"]] for v in found), default=0)


def _fmt(j: float | None, unit: str = "J") -> str:
    if j is None:
        return "n/a"
    for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(j) >= scale or scale == 1e-9:
            return f"{j / scale:.3f} {prefix}{unit}"
    return f"{j:.3g} {unit}"


def render(record: dict[str, Any], found: list[dict[str, Any]]) -> None:
    s = record["summary"]
    lo, hi = s["success_ci95"]
    console.print(f"[bold]{record['kind']}[/bold] image on {record['task']} ({record['target']}"
                  f"): success {s['successes']}/{s['episodes']} (95% CI {lo:.0%}..{hi:.0%}), "
                  f"{s['chunks']} chunks, latency p50 {s['latency_ms_p50']:.2f} ms, "
                  f"p99 {s['latency_ms_p99']:.2f} ms")
    if record.get("sensor"):
        sen = record["sensor"]
        console.print(f"sensor {sen['source']}: {sen['samples']} samples, "
                      f"[bold]{sen['dropped_samples']} dropped[/bold]")
    else:
        console.print("no sensor: every figure below is a model estimate, labelled by model")
    table = Table("source", "per chunk", "per episode", "average power", "of which idle",
                  title="energy")
    for src, tot in record["totals"].items():
        if tot is None:
            table.add_row(src, "n/a (no figure for this network)", "", "", "")
            continue
        table.add_row(src, _fmt(tot["j_per_chunk"]), _fmt(tot["j_per_episode"]),
                      _fmt(tot["average_w"], "W"), _fmt(tot["phases"].get("idle", 0.0)))
    console.print(table)
    phases = Table("phase", *[src for src, t in record["totals"].items() if t],
                   title="energy per phase (whole run)")
    names = sorted({p for t in record["totals"].values() if t for p in t["phases"]},
                   key=lambda n: ["encode", "denoise", "decode", "world_model", "idle"].index(n)
                   if n in ("encode", "denoise", "decode", "world_model", "idle") else 9)
    for name in names:
        phases.add_row(name, *[_fmt(t["phases"].get(name, 0.0))
                               for t in record["totals"].values() if t])
    console.print(phases)
    for v in found:
        color = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}[v["verdict"]]
        extra = (f", over by {_fmt(v['excess'], v['unit'])} ({v['excess_pct']:.1f}%)"
                 if v["verdict"] == "FAIL" else "")
        console.print(f"[{color}]{v['verdict']}[/{color}] {v['what']}: "
                      f"{_fmt(v['value'], v['unit'])} ({v['source']}) against a budget of "
                      f"{_fmt(v['budget'], v['unit'])}{extra}")


def write_json(record: dict[str, Any], path: Path) -> None:
    with AtomicFile(path) as tmp:
        tmp.write_text(dumps(record, indent=1))


def read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpikeflightError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise SpikeflightError(f"{path}: not a profile record (line {exc.lineno}: "
                               f"{exc.msg})") from exc
    if not isinstance(record, dict) or "totals" not in record or "chunks" not in record:
        raise SpikeflightError(f"{path}: not a profile record written by power profile --json")
    return record


def chunk_table(record: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    sources = list(record["totals"])
    cols = ["episode", "mission_s", "seconds", *[f"{s}_j" for s in sources]]
    rows = [[r["episode"], r["mission_s"], r["seconds"], *[r.get(s) for s in sources]]
            for r in record["chunks"]]
    return cols, rows


def write_csv(record: dict[str, Any], path: Path) -> None:
    cols, rows = chunk_table(record)
    with AtomicFile(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)


def write_parquet(record: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols, rows = chunk_table(record)
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})
    table = table.replace_schema_metadata({"spikeflight": dumps(
        {k: record[k] for k in ("task", "target", "kind", "image_sha256", "models")})})
    with AtomicFile(path) as tmp:
        pq.write_table(table, str(tmp))


def plot(record: dict[str, Any], path: Path, budget_w: float | None,
         window_s: float = 1.0) -> None:
    """Power over mission time (sliding window) per source against the budget, and energy
    per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sources = [s for s, t in record["totals"].items() if t]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    t = np.array([r["mission_s"] for r in record["chunks"]])
    grid = np.arange(0.0, (t.max() if t.size else 0.0) + window_s, 0.05)
    for src in sources:
        if src == "sensor":
            continue  # the sensor measures wall time, not mission time
        j = np.array([r.get(src) or 0.0 for r in record["chunks"]])
        avg = [j[(t > g - window_s) & (t <= g)].sum() / window_s for g in grid]
        ax.plot(grid, avg, label=src)
    if budget_w is not None:
        ax.axhline(budget_w, color="red", linestyle="--", label="budget")
    ax.set_yscale("log")
    ax.set_xlabel("mission time (s)")
    ax.set_ylabel(f"power, W ({window_s:g} s window)")
    ax.legend(fontsize=8)
    phases = ["encode", "denoise", "decode", "world_model", "idle"]
    width = 0.8 / max(len(sources), 1)
    for i, src in enumerate(sources):
        vals = [record["totals"][src]["phases"].get(p, 0.0) for p in phases]
        bx.bar(np.arange(len(phases)) + i * width, vals, width, label=src)
    bx.set_xticks(np.arange(len(phases)) + 0.4 - width / 2, phases, rotation=30)
    bx.set_yscale("log")
    bx.set_ylabel("J (whole run)")
    bx.set_title("energy per phase")
    fig.suptitle(f"{record['kind']} on {record['task']}: {record['summary']['episodes']} "
                 "episodes")
    fig.tight_layout()
    with AtomicFile(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
