"""Off a terminal, progress is plain lines: at every tenth, and at a steady cadence while
a long job moves, with its rate and ETA."""

from __future__ import annotations

import io
import time

from rich.console import Console

from tools.progress import LoggedProgress


def _bar(out: io.StringIO) -> LoggedProgress:
    return LoggedProgress(console=Console(file=out, force_terminal=False))


def test_plain_lines_at_every_tenth_with_rate_and_eta() -> None:
    out = io.StringIO()
    with _bar(out) as bar:
        job = bar.add_task("train", total=20, status="")
        for i in range(20):
            bar.update(job, completed=i + 1, status=f"loss {1 / (i + 1):.3f}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("train 100% 20/20 loss 0.050")
    assert all("/s" in ln and "elapsed" in ln for ln in lines) and "ETA" in lines[0]


def test_a_slow_job_prints_between_tenths() -> None:
    out = io.StringIO()
    with _bar(out) as bar:
        bar.EVERY_S = 0.01
        job = bar.add_task("collect", total=1000, status="")
        for _ in range(3):  # three steps, none a tenth: one line each, by time
            time.sleep(0.02)
            bar.advance(job)
    assert len(out.getvalue().splitlines()) == 3


def test_quiet_prints_no_progress_but_the_result(tmp_path) -> None:
    from tests.tools.test_data_cli import TOY, TOY_EXPERT, cli

    out = tmp_path / "q.hdf5"
    loud = cli("data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "-n", "3", "-o",
               str(out))
    quiet = cli("--quiet", "data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "-n",
                "3", "-o", str(out))
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert "collect " in loud.stderr and quiet.stderr == ""
    assert quiet.stdout.startswith("wrote ") and "3 successful" in quiet.stdout
