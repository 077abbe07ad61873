"""Progress bars for long jobs (rich), quiet when stderr is not a terminal unless forced."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


def progress_bar() -> Progress:
    """A bar with count, elapsed and remaining time, drawn on stderr."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


def episode_counter(bar: Progress, job: TaskID):
    """A per-episode callback advancing ``job`` and showing the successes so far."""
    wins = 0

    def on_episode(res) -> None:
        nonlocal wins
        wins += bool(res.success)
        bar.update(job, advance=1, status=f"success {wins}")
    return on_episode
