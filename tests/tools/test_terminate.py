"""SIGTERM handling: the exit survives a swallowed SystemExit."""

from __future__ import annotations

import os
import signal

import pytest

from tools import progress, terminate


def test_a_swallowed_sigterm_ends_the_job_at_the_next_progress_update(monkeypatch) -> None:
    monkeypatch.setattr(terminate, "_pending", None)
    old = signal.getsignal(signal.SIGTERM)
    terminate.install()
    try:
        terminate.check()  # nothing pending: no exit
        try:  # a C extension's callback swallowing the handler's exit
            os.kill(os.getpid(), signal.SIGTERM)
        except SystemExit as exc:
            assert exc.code == 128 + signal.SIGTERM
        bar = progress.progress_bar()
        job = bar.add_task("job", total=10, status="")
        with pytest.raises(SystemExit) as caught:
            bar.update(job, advance=1)
        assert caught.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, old)
