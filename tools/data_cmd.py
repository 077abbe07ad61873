"""``spikeflight data``: collect expert demonstrations, inspect demonstration files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tools import json_out
from tools.options import ObsKeys, output_file
from tools.progress import console, progress_bar

app = typer.Typer(no_args_is_help=True, help="Demonstration datasets (robomimic HDF5).")


@app.command("collect")
def collect(
    task: str = typer.Option("hatch", "--task", "-t",
                             help="cabin task name, or module:callable for your own env"),
    episodes: int = typer.Option(100, "--episodes", "-n", min=1, help="episodes to record"),
    out: Path = typer.Option(..., "--out", "-o", help="output .hdf5 file (written atomically)",
                             callback=output_file),
    seed: int = typer.Option(0, "--seed", help="first seed; episode i uses seed + i"),
    expert: str | None = typer.Option(None, "--expert",
                                      help="module:callable building the expert from the env"),
    noise: float = typer.Option(0.0, "--noise", min=0.0,
                                help="DART noise: std of Gaussian noise added to executed "
                                     "motion commands (labels stay the expert's)"),
    noise_per_step: bool = typer.Option(False, "--noise-per-step",
                                        help="draw the noise afresh every step (default: "
                                             "hold each draw for a 4-step action chunk)"),
) -> None:
    """Record scripted-expert episodes of a task into a robomimic-layout HDF5 file."""
    from hardware.sim.collect import NOISE_HOLD, Rollout, env_args_for
    from hardware.sim.dataset import DemoWriter

    roll = Rollout(task, expert, noise=noise, noise_hold=1 if noise_per_step else NOISE_HOLD)
    successes = 0
    args = env_args_for(task, roll.env, roll.source, noise, roll.noise_hold, roll.phases)
    with DemoWriter(out, args) as writer, progress_bar() as bar:
        job = bar.add_task(f"collect {task}", total=episodes, status="")
        for i in range(episodes):
            ep = roll.episode(seed + i)
            writer.add(ep)
            successes += ep.success
            bar.update(job, advance=1, status=f"success {successes}/{i + 1}")
    console.print(f"wrote {out}: {episodes} episodes, {successes} successful "
                  f"({100.0 * successes / episodes:.0f}%)")


@app.command("info")
def info(
    file: Path = typer.Argument(..., help="demonstration .hdf5 file"),
    task: str | None = typer.Option(None, "--task", "-t", help="environment (task name or "
                                    "module:callable) whose observation order to check"),
    obs_keys: ObsKeys = None,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Counts, episode lengths, success rate, observation order and per-field value
    ranges of a file."""
    from hardware.sim.dataset import summarize
    from hardware.sim.obs_order import parse_obs_keys

    s = summarize(file, task, parse_obs_keys(obs_keys))
    if as_json:
        print(json_out.dumps(s))
        return
    console.print(f"[bold]{s['file']}[/bold]  task {s['env_name']}")
    console.print(f"episodes {s['episodes']}  steps {s['steps']}  "
                  f"length min/mean/max {s['length']['min']}/{s['length']['mean']:.1f}/"
                  f"{s['length']['max']}  success {s['successes']}/{s['episodes']} "
                  f"({100 * s['success_rate']:.1f}%)  obs dim {s['obs_dim']}  "
                  f"action dim {s['action_dim']}")
    console.print(f"observation order ({s['obs_order']}): {', '.join(s['obs_keys'])}")
    for name, count in s["non_finite"].items():
        console.print(f"[yellow]warning: {count} non-finite value(s) in {name}: training "
                      "refuses this file[/yellow]")
    table = Table("field", "dims", "min", "max")
    for key, r in s["ranges"].items():
        table.add_row(key, str(len(r["min"])), " ".join(f"{v:.3g}" for v in r["min"]),
                      " ".join(f"{v:.3g}" for v in r["max"]))
    console.print(table)
