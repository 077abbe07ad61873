"""``spikeflight demo`` (what ``make demo`` runs): the main job on built-in defaults.

Take the shipped spiking policy of a task (default ``hatch``), compile it for Loihi 2 into a signed
image, verify it, fly it in the cabin without a budget and then under half of the power it
drew, print the table (success, latency, energy per chunk and per episode under the
``cmos45-horowitz2014`` model, budget compliance) and save a plot of power over mission
time against the budget, with the operating point the governor chose.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tools.progress import console


def demo(
    task: str = typer.Option("hatch", "--task", "-t", help="cabin task whose shipped policy "
                                                           "flies"),
    out_dir: Path = typer.Option(Path("out/demo"), "--out-dir", help="where files go"),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="episodes per run"),
) -> None:
    """Compile the shipped policy, fly it with and without a power budget, plot the flight."""
    from compiler.build import CompileOptions, compile_policy
    from hardware.sim.registry import make_env
    from policies.checkpoint import shipped
    from runtime.flight import FlightConfig, fly
    from runtime.image import write_image
    from runtime.keys import load_private_key, save_keypair
    from runtime.loader import load_flight_policy

    checkpoint = shipped(task)
    key = out_dir / "keys" / "demo"
    if not key.exists():
        save_keypair(key)
    image = out_dir / f"{task}.sfimg"
    with console.status("compiling the shipped policy for Loihi 2"):
        result = compile_policy(checkpoint, CompileOptions(target="loihi2", ground_episodes=10),
                                load_private_key(key), on_stage=console.log)
    write_image(image, result.image)
    console.print(f"wrote {image} ({len(result.image):,} bytes), signed")
    policy = load_flight_policy(image, key.with_name("demo.pub"))
    env = make_env(policy.task)
    runs = []
    free = fly(policy, env, FlightConfig(backend="onnx-fixed"), episodes, 10_000)
    runs.append(("no budget", free))
    budget = 0.5 * free["average_w"]
    telemetry = out_dir / "flight.jsonl"
    telemetry.unlink(missing_ok=True)
    governed = fly(policy, env, FlightConfig(backend="onnx-fixed", budget_w=budget, window_s=1.0,
                                             telemetry=telemetry), episodes, 10_000)
    runs.append((f"budget {budget * 1e6:.2f} uW", governed))
    env.close()
    energy = result.manifest["calibration"]["energy_per_chunk"]
    table = Table("run", "backend", "success", "latency p50 / p99 ms", "uJ/chunk",
                  "uJ/episode", "avg uW", "windows over budget",
                  title=f"{policy.task}: {checkpoint.name} on the runtime ({energy['model']})")
    for name, s in runs:
        over = f"{s['windows_over_budget']}/{s['windows']}" if s["budget_w"] else "-"
        table.add_row(name, ", ".join(s["backends"]), f"{s['successes']}/{s['episodes']}",
                      f"{s['latency_ms_p50']:.2f} / {s['latency_ms_p99']:.2f}",
                      f"{s['energy_j_per_chunk'] * 1e6:.3f}",
                      f"{s['energy_j_per_episode'] * 1e6:.1f}", f"{s['average_w'] * 1e6:.2f}",
                      over)
    console.print(table)
    console.print(f"ANN twin of the same layout: {energy['ann_j_per_chunk'] * 1e6:.3f} uJ/chunk "
                  f"(spiking policy {energy['energy_ratio_vs_ann']:.2f} of it, "
                  f"{energy['model']})")
    plot = out_dir / "flight.png"
    plot_flight(telemetry, budget, plot)
    console.print(f"plot: {plot}; telemetry: {telemetry}")


def plot_flight(telemetry: Path, budget_w: float, out: Path, window_s: float = 1.0) -> None:
    """Power (sliding-window average) over mission time against the budget, and the
    operating point of every chunk."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from runtime.telemetry import read_telemetry

    recs = read_telemetry(telemetry)
    energy = [(r["mission_s"], r["value"]) for r in recs if r["name"] == "energy_j"]
    points = [(r["mission_s"], r["value"]) for r in recs if r["name"] == "operating_point"]
    t = np.array([e[0] for e in energy])
    j = np.array([e[1] for e in energy])
    grid = np.arange(0.0, t.max() + window_s, 0.05)
    avg = np.array([j[(t > g - window_s) & (t <= g)].sum() / window_s for g in grid])
    names = sorted({p[1] for p in points}, key=lambda n: [q[1] for q in points].index(n))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(grid, avg * 1e6, label=f"power, {window_s:g} s window (cmos45 model)")
    ax.axhline(budget_w * 1e6, color="red", linestyle="--", label="budget")
    ax.set_ylabel("uW")
    ax.legend(loc="upper right")
    ax2.scatter([p[0] for p in points], [names.index(p[1]) for p in points], s=4)
    ax2.set_yticks(range(len(names)), names)
    ax2.set_xlabel("mission time (s)")
    ax2.set_ylabel("operating point")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
