"""``spikeflight demo`` (what ``make demo`` runs): the main job on built-in defaults.

For now: record a few expert demonstrations of the default task, show the file's summary,
and print the scripted experts' success on every cabin task.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tools.progress import console


def demo(
    out_dir: Path = typer.Option(Path("out/demo"), "--out-dir", help="where files go"),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1,
                                 help="episodes per task for the success table"),
) -> None:
    """Collect demonstrations of the default task and tabulate expert success per task."""
    from hardware.sim.registry import DEFAULT_TASK, TASKS
    from tools.bench import expert_success
    from tools.data_cmd import collect, info

    demos = out_dir / f"{DEFAULT_TASK}.hdf5"
    collect(task=DEFAULT_TASK, episodes=episodes, out=demos, seed=0, expert=None, noise=0.0)
    info(file=demos, as_json=False)
    table = Table("task", "expert success", "mean length (steps at 20 Hz)",
                  title=f"scripted experts, seeds 0..{episodes - 1}")
    for task in TASKS:
        ok, length = expert_success(task, list(range(episodes)))
        table.add_row(task, f"{ok}/{episodes} ({ok / episodes:.0%})", f"{length:.0f}")
    console.print(table)
