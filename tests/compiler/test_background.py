"""The compile's worker process: its value comes back, its error comes back as one line,
and closing it (a failed compile) leaves no process behind."""

from __future__ import annotations

import time

import pytest

from compiler.closed_loop import Background


def _square(x: int) -> int:
    return x * x


def _fail(msg: str) -> None:
    raise ValueError(msg)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_the_value_comes_back_from_the_worker() -> None:
    with Background(_square, 12) as job:
        assert job.result() == 144
        assert job.result() == 144  # read once, kept


def test_an_error_in_the_worker_is_raised_in_the_caller() -> None:
    with Background(_fail, "no episodes") as job, pytest.raises(RuntimeError,
                                                                  match="ValueError: no episodes"):
        job.result()


def test_leaving_early_stops_the_worker() -> None:
    with Background(_sleep, 60.0) as job:
        proc = job._proc
        assert proc.is_alive()
    assert not proc.is_alive() and proc.exitcode is not None
