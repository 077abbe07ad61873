"""Progress for long jobs: rich bars on a terminal, plain lines in a log or CI, nothing
with ``spikeflight --quiet`` (``QUIET``, for scripts)."""

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

from tools import terminate

console = Console()
err_console = Console(stderr=True)
QUIET = False  # set by ``spikeflight --quiet``: no bars, no plain progress lines


class LoggedProgress(Progress):
    """A rich ``Progress`` that, off a terminal (a log, CI), draws nothing and instead
    prints one plain line per task at every tenth of its total and at least every
    ``EVERY_S`` seconds while it moves:
    ``DESCRIPTION NN% DONE/TOTAL STATUS (elapsed S s, R/s, ETA E s)``."""

    EVERY_S = 30.0

    def __init__(self, *columns, **kwargs) -> None:
        self.plain = not kwargs["console"].is_terminal and not QUIET
        super().__init__(*columns, disable=self.plain or QUIET, **kwargs)
        self._tenths: dict[TaskID, int] = {}
        self._last: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        terminate.check()  # a SIGTERM whose exit something swallowed ends the job here
        super().update(task_id, **kwargs)
        if self.plain:
            self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        terminate.check()
        super().advance(task_id, advance)
        if self.plain:
            self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if not task.total:
            return
        tenth = int(task.completed * 10 // task.total)
        elapsed = task.elapsed or 0.0
        due = elapsed - self._last.get(task_id, 0.0) >= self.EVERY_S and task.completed > 0
        if tenth <= self._tenths.get(task_id, 0) and not due:
            return
        self._tenths[task_id] = max(tenth, self._tenths.get(task_id, 0))
        self._last[task_id] = elapsed
        status = task.fields.get("status", "")
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(task.total - task.completed) / rate:.0f} s" if rate > 0 else ""
        print(f"{task.description} {int(task.completed * 100 // task.total)}% "
              f"{task.completed:g}/{task.total:g} {status} (elapsed {elapsed:.0f} s, "
              f"{rate:.3g}/s{eta})", file=self.console.file, flush=True)


def progress_bar() -> Progress:
    """A bar with count, elapsed and remaining time on stderr (plain lines off a
    terminal)."""
    return LoggedProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                          transient=False)


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
        self.quiet = QUIET
        if err_console.is_terminal and not QUIET:
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
        if tenth > self._tenth and not self.quiet:
            self._tenth = tenth
            dt = max(self._clock() - self.t0, 1e-9)
            print(f"{self.label} {done * 100 // max(self.total, 1)}% {done}/{self.total} bytes "
                  f"{(done - self.start) / dt / 1e3:.0f} kB/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
