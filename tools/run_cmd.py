"""``spikeflight run``: fly a signed image in closed loop, in-process, under a power budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools import json_out
from tools.options import output_file
from tools.progress import console, episode_counter, progress_bar

WorldModelOpt = Annotated[bool, typer.Option(
    "--world-model/--no-world-model",
    help="fly the image's world-model guard (screening, anomalies) if it carries one")]
ScreenOpt = Annotated[int, typer.Option(
    "--screen", help="candidate chunks per plan, computed in one backend call; the "
    "first the world model lets through flies (all are booked)")]


def run_cmd(
    image: Path = typer.Argument(..., help="signed policy image (.sfimg)"),
    pubkey: Path = typer.Option(..., "--pubkey", help="public key the image must be signed by"),
    task: str | None = typer.Option(None, "--task", "-t", help="default: the image's task"),
    episodes: int = typer.Option(20, "--episodes", "-n", min=1),
    seed: int = typer.Option(10_000, "--seed", help="first episode seed (held out)"),
    budget_w: float | None = typer.Option(None, "--budget-w",
                                          help="average power budget over the window (W)"),
    budget_j: float | None = typer.Option(None, "--budget-j-per-episode",
                                          help="energy budget per episode (J)"),
    window_s: float = typer.Option(2.0, "--window-s", help="power-budget window (s)"),
    backend: str = typer.Option("auto", "--backend",
                                help="auto | onnx | lava | onnx-fixed | onnx-float"),
    deadline_ms: float | None = typer.Option(None, "--deadline-ms",
                                             help="per-chunk deadline (watchdog)"),
    telemetry: Path | None = typer.Option(None, "--telemetry", help="JSON-lines telemetry file",
                                          callback=output_file),
    world_model: WorldModelOpt = True,
    candidates: ScreenOpt = 1,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Verify the image, then run closed-loop episodes: success, latency percentiles,
    energy per chunk and episode (cmos45-horowitz2014 model) and budget compliance."""
    from hardware.sim.registry import make_env
    from runtime.backends import BACKENDS
    from runtime.flight import FlightConfig, fly
    from runtime.loader import load_flight_policy

    if backend not in (*BACKENDS, "auto", "onnx"):
        raise SpikeflightError(f"--backend must be auto, onnx or one of {', '.join(BACKENDS)}, "
                               f"got {backend!r}")
    cfg = FlightConfig(backend=backend, budget_w=budget_w, budget_j=budget_j, window_s=window_s,
                       deadline_ms=deadline_ms, telemetry=telemetry,
                       world_model=world_model, candidates=candidates)  # checks budgets
    policy = load_flight_policy(image, pubkey)  # verified before anything runs
    task = task or policy.task
    env = make_env(task)
    with progress_bar() as bar:
        job = bar.add_task(f"run {image.name} on {task}", total=episodes, status="")
        on_episode = episode_counter(bar, job)

        summary = fly(policy, env, cfg, episodes, seed, on_episode=on_episode)
    env.close()
    if as_json:
        print(json_out.dumps(summary))
        return
    _print(summary)


def _print(s: dict) -> None:
    lo, hi = s["success_ci95"]
    console.print(f"success {s['successes']}/{s['episodes']} = {s['success_rate']:.0%} "
                  f"(95% CI {lo:.0%}..{hi:.0%}); backends {', '.join(s['backends'])}; "
                  f"fallbacks {s['fallbacks']}; deadline misses {s['deadline_misses']}; "
                  f"safe-mode steps {s['safe_steps']}")
    table = Table("per chunk", "median", "p99", title="latency (ms)")
    table.add_row("latency", f"{s['latency_ms_p50']:.2f}", f"{s['latency_ms_p99']:.2f}")
    console.print(table)
    e = Table("energy", "value", "source", title="energy and power")
    e.add_row("per chunk (mean)", f"{s['energy_j_per_chunk'] * 1e6:.3f} uJ", s["energy_source"])
    e.add_row("per episode (mean)", f"{s['energy_j_per_episode'] * 1e6:.2f} uJ",
              s["energy_source"])
    e.add_row("average power", f"{s['average_w'] * 1e6:.2f} uW", s["energy_source"])
    if s["budget_w"] is not None:
        e.add_row("budget", f"{s['budget_w'] * 1e6:.2f} uW over {s['window_s']} s windows", "")
        e.add_row("windows over budget", f"{s['windows_over_budget']} of {s['windows']}",
                  f"max {s['max_window_w'] * 1e6:.2f} uW")
    console.print(e)
    pts = ", ".join(f"{k} {v}" for k, v in s["operating_points"].items())
    console.print(f"operating points used (chunks): {pts or 'none'}")
    if s.get("world_model"):
        console.print(f"world model: {s['vetoes']} chunks vetoed, {s['anomalies']} flagged as "
                      "anomalous")
    if s["firing_rates"]:
        console.print("firing rates per population (spikes/neuron/micro-step): "
                      + ", ".join(f"{r:.3f}" for r in s["firing_rates"]))
