"""Progress bars for long jobs (rich), quiet when stderr is not a terminal unless forced."""

from __future__ import annotations

import sys

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


class ByteProgress:
    """Bytes moved: a rich bar with size and throughput on a terminal; otherwise (a log,
    CI) a plain ``LABEL NN% DONE/TOTAL bytes RATE kB/s`` line at every tenth."""

    def __init__(self, label: str, total: int) -> None:
        import time

        self.label, self.total, self._clock = label, total, time.perf_counter
        self.t0, self.start, self._tenth = self._clock(), 0, -1
        self.bar: Progress | None = None
        if err_console.is_terminal:
            from rich.progress import DownloadColumn, TransferSpeedColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                console=err_console)
            self.job = self.bar.add_task(label, total=total)
            self.bar.start()

    def resume_at(self, done: int) -> None:
        """The transfer picked up at ``done`` bytes (rates count from there)."""
        self.start = done
        self.update(done)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.job, completed=done)
            return
        tenth = done * 10 // max(self.total, 1)
        if tenth > self._tenth:
            self._tenth = tenth
            dt = max(self._clock() - self.t0, 1e-9)
            print(f"{self.label} {done * 100 // max(self.total, 1)}% {done}/{self.total} bytes "
                  f"{(done - self.start) / dt / 1e3:.0f} kB/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
