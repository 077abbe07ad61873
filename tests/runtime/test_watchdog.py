"""The watchdog times each chunk against its deadline with an injected clock (no sleeping)."""

from __future__ import annotations

import math

import pytest

from hardware.errors import SpikeflightError
from runtime.watchdog import Watchdog, WatchdogError


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def dog(deadline_s: float = 0.02):
    clock, events = FakeClock(), []
    wd = Watchdog(deadline_s, clock=clock,
                  on_event=lambda name, severity="info", **f: events.append(
                      {"name": name, "severity": severity, **f}))
    return wd, clock, events


def test_a_fast_chunk_is_not_a_miss() -> None:
    wd, clock, events = dog()
    with wd.guard(0) as g:
        clock.t += 0.015
    assert not g.missed and g.elapsed_s == pytest.approx(0.015)
    assert wd.misses == 0 and events == []


def test_a_slow_chunk_is_a_miss_and_the_event_carries_the_numbers() -> None:
    wd, clock, events = dog()
    with wd.guard(7) as g:
        clock.t += 0.035
    assert g.missed and wd.misses == 1
    (e,) = events
    assert e["name"] == "deadline_miss" and e["severity"] == "warning" and e["chunk"] == 7
    assert e["elapsed_ms"] == pytest.approx(35.0) and e["deadline_ms"] == pytest.approx(20.0)


def test_exactly_on_the_deadline_is_in_time_and_misses_count() -> None:
    wd, clock, events = dog(deadline_s=0.5)  # exact in binary
    with wd.guard(0) as g:
        clock.t += 0.5
    assert not g.missed
    for i in range(1, 4):
        with wd.guard(i) as g:
            clock.t += 0.75
        assert g.missed
    assert wd.misses == 3 and [e["chunk"] for e in events] == [1, 2, 3]


def test_the_computation_is_timed_even_when_it_raises() -> None:
    wd, clock, events = dog()
    with pytest.raises(RuntimeError), wd.guard(3) as g:
        clock.t += 1.0
        raise RuntimeError("backend died")
    assert g.missed and events[0]["chunk"] == 3


def test_check_helper() -> None:
    wd, _, events = dog()
    assert wd.check(1.0, 1.01) is False
    assert wd.check(1.0, 1.05) is True and wd.misses == 1
    assert events[0]["chunk"] is None and events[0]["elapsed_ms"] == pytest.approx(50.0)
    assert Watchdog(0.01).check(0.0, 1.0)  # no callback: still counted
    quiet = Watchdog(0.01)
    quiet.check(0.0, 1.0)
    assert quiet.misses == 1


@pytest.mark.parametrize("deadline", [0, -0.01, math.nan, math.inf, "0.02", None, True])
def test_bad_deadlines_give_one_line_errors(deadline) -> None:
    with pytest.raises(WatchdogError) as err:
        Watchdog(deadline)
    assert isinstance(err.value, SpikeflightError)
    assert "deadline" in str(err.value) and "\n" not in str(err.value)
