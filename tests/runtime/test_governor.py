"""The power governor holds its budgets: no sliding window over the power budget, no episode
over its joules, cheaper points as the budget shrinks, safe mode (said so) below the
cheapest point and out of it as soon as one fits again."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from hardware.errors import SpikeflightError
from runtime.governor import Budget, GovernorError, OperatingPoint, PowerGovernor

DT = 0.05  # s, 20 Hz control
IDLE_W = 0.25
SAFE_W = 0.1
SRC = "cmos45-horowitz2014"


def points(replan: int = 8) -> list[OperatingPoint]:
    """DDIM 5/10/20 steps: 1/2/4 J per chunk, success 0.80/0.90/0.95."""
    return [OperatingPoint(f"ddim{k}", k, 4, replan, e, s, SRC)
            for k, e, s in ((20, 4.0, 0.95), (5, 1.0, 0.80), (10, 2.0, 0.90))]


UNCONSTRAINED_W = points()[0].power_w(DT, IDLE_W)  # ddim20 flown alone: 10.25 W
CHEAPEST_W = points()[1].power_w(DT, IDLE_W)  # ddim5: 2.75 W


def governor(budget: Budget, pts: list[OperatingPoint] | None = None, events=None,
             **kw) -> PowerGovernor:
    def on_event(name: str, severity: str = "info", **fields) -> None:
        events.append({"name": name, "severity": severity, **fields})

    return PowerGovernor(pts or points(), budget, DT, idle_w=IDLE_W, safe_power_w=SAFE_W,
                         on_event=on_event if events is not None else None, **kw)


@dataclass
class Flight:
    """Follows a governor the way runtime.executive does: choose at a chunk's start, record
    its energy at that time (a safe step: ``safe_power_w * dt``, one step), and advance
    mission time by adding ``dt`` once per control step (floating-point accumulation)."""

    gov: PowerGovernor
    t: float = 0.0
    log: list[tuple[float, float]] = field(default_factory=list)  # (t, J) per record
    chosen: list[str | None] = field(default_factory=list)

    def fly(self, steps: int, episode: bool = False, energy=None) -> list[str | None]:
        names, done = [], 0
        while done < steps:
            p = self.gov.choose(self.t, steps - done if episode else None)
            n = 1 if p is None else min(p.replan, steps - done)
            e = self.gov.safe_power_w * DT if p is None else (energy or (lambda q: q.energy_j))(p)
            self.gov.record(self.t, e)
            self.log.append((self.t, e))
            names.append(None if p is None else p.name)
            for _ in range(n):
                self.t += DT
            done += n
        self.chosen += names
        return names


def sliding_windows(log: list[tuple[float, float]], window_s: float, idle_w: float,
                    ends: list[float] | None = None) -> list[tuple[float, float]]:
    """(end, joules) of every sliding window ``(s - W, s]`` that ends at a record time (the
    sum of impulses over all windows peaks at one of those), idle included, times at 1 ns."""
    t = np.array([round(x * 1e9) for x, _ in log], dtype=np.int64)
    cum = np.concatenate([[0.0], np.cumsum([e for _, e in log])])
    w = round(window_s * 1e9)
    out = []
    for s in t if ends is None else np.array([round(x * 1e9) for x in ends], dtype=np.int64):
        lo, hi = np.searchsorted(t, s - w, "right"), np.searchsorted(t, s, "right")
        out.append((s / 1e9, cum[hi] - cum[lo] + idle_w * window_s))
    return out


def over_budget(log, watts: float, window_s: float = 2.0, ends=None) -> list[tuple[float, float]]:
    return [(s, j) for s, j in sliding_windows(log, window_s, IDLE_W, ends)
            if j > watts * window_s * (1 + 1e-9)]


# -- the window budget -------------------------------------------------------------------------

@pytest.mark.parametrize("frac, expected", [(1.1, "ddim20"), (1.0, "ddim10"), (0.5, "ddim5"),
                                            (0.25, None)])
def test_no_window_is_over_budget_and_points_get_cheaper(frac: float, expected) -> None:
    # the plan limit is 95% of the budget: at 100% of ddim20's own power ddim10 is chosen
    watts = frac * UNCONSTRAINED_W
    events: list[dict] = []
    flight = Flight(governor(Budget(watts=watts), events=events))
    flight.fly(600)  # 30 s, ~75 chunks
    assert set(flight.chosen) == {expected}
    assert not over_budget(flight.log, watts)
    assert all(w[3] <= watts * (1 + 1e-9) for w in flight.gov.windows(flight.t))
    assert len(flight.gov.windows(flight.t)) == 15
    if expected is None:  # 25% is under ddim5's 2.75 W: safe mode, said once
        assert watts < CHEAPEST_W and flight.gov.state == "safe"
        states = [e for e in events if e["name"] == "governor_state"]
        assert [(e["from"], e["to"]) for e in states] == [("nominal", "safe")]
        assert "no operating point fits" in states[0]["reason"] and states[0]["point"] is None
        assert [e["active"] for e in events if e["name"] == "safe_mode"] == [True]


def test_average_power_falls_with_the_budget() -> None:
    used = []
    for frac in (1.1, 1.0, 0.5, 0.25):
        flight = Flight(governor(Budget(watts=frac * UNCONSTRAINED_W)))
        flight.fly(400)
        used.append(sum(e for _, e in flight.log) / flight.t + IDLE_W)
        assert used[-1] <= frac * UNCONSTRAINED_W
    assert used == sorted(used, reverse=True) and len(set(used)) == 4


def power_only(self, p, t):
    """A broken governor for the mutation test: sustained power only, no window."""
    b = self.budget
    return None if p.power_w(DT, IDLE_W) <= b.margin * b.watts else "over"


@pytest.mark.parametrize("mutant", [None, "ignores the window", "sustained power only"])
def test_windows_hold_where_chunks_do_not_divide_the_window(monkeypatch, mutant) -> None:
    # chunks of 0.6 s: a 2 s window can hold 4 of them; ddim10's 3.58 W (idle included) fits
    # 95% of 3.8 W on average, yet 4 x 2 J + 0.5 J idle = 8.5 J > 7.6 J in one window
    if mutant == "ignores the window":
        monkeypatch.setattr(PowerGovernor, "_window_misfit", lambda self, p, t: None)
    elif mutant == "sustained power only":
        monkeypatch.setattr(PowerGovernor, "_window_misfit", power_only)
    watts = 3.8
    flight = Flight(governor(Budget(watts=watts), pts=points(replan=12)))
    flight.fly(400)
    if mutant is None:
        assert not over_budget(flight.log, watts)
        assert set(flight.chosen) == {"ddim5"}
    else:  # the check finds what a governor that does not hold the window would do
        assert over_budget(flight.log, watts)


def test_a_budget_cut_waits_for_the_window_to_drain(monkeypatch) -> None:
    events: list[dict] = []
    high, low = 1.1 * UNCONSTRAINED_W, 0.5 * UNCONSTRAINED_W
    flight = Flight(governor(Budget(watts=high), events=events))
    flight.fly(200)
    cut, n = flight.t, len(flight.log)
    flight.gov.set_budget(Budget(watts=low))  # brown-out
    after = flight.fly(200)
    assert after[0] is None and after[-1] == "ddim5"  # safe until drained, then degraded
    assert not over_budget(flight.log[:n], high)
    chunk_ends = [t for (t, _), name in zip(flight.log[n:], after, strict=True) if name]
    assert chunk_ends and min(chunk_ends) > cut
    assert not over_budget(flight.log, low, ends=chunk_ends)  # every window a chunk ends
    to = [e["to"] for e in events if e["name"] == "governor_state"]
    assert to == ["safe", "degraded"]
    assert any(e["name"] == "governor_budget" and e["watts"] == low for e in events)


def test_a_governor_that_ignored_the_cut_would_fail(monkeypatch) -> None:
    monkeypatch.setattr(PowerGovernor, "_window_misfit", power_only)
    high, low = 1.1 * UNCONSTRAINED_W, 0.5 * UNCONSTRAINED_W
    flight = Flight(governor(Budget(watts=high)))
    flight.fly(200)
    n = len(flight.log)
    flight.gov.set_budget(Budget(watts=low))
    flight.fly(200)
    chunk_ends = [t for t, e in flight.log[n:] if e > SAFE_W * DT]
    assert over_budget(flight.log, low, ends=chunk_ends)


def test_safe_mode_below_the_cheapest_point_until_the_budget_rises() -> None:
    events: list[dict] = []
    flight = Flight(governor(Budget(watts=0.5 * CHEAPEST_W), events=events))
    assert set(flight.fly(100)) == {None} and flight.gov.state == "safe"
    assert "ddim5" in flight.gov.reason and "window" in flight.gov.reason
    flight.gov.set_budget(Budget(watts=1.1 * UNCONSTRAINED_W))
    assert flight.fly(8)[0] == "ddim20" and flight.gov.state == "nominal"  # at once
    states = [(e["from"], e["to"], e["point"]) for e in events if e["name"] == "governor_state"]
    assert states == [("nominal", "safe", None), ("safe", "nominal", "ddim20")]
    safe = [e for e in events if e["name"] == "safe_mode"]
    assert [(e["active"], e["severity"]) for e in safe] == [(True, "warning"), (False, "info")]
    assert not over_budget(flight.log[:20], 0.5 * CHEAPEST_W)


def test_a_budget_under_the_safe_mode_floor_says_so() -> None:
    gov = governor(Budget(watts=0.2))  # idle 0.25 W alone is more
    assert gov.choose(0.0, None) is None
    assert "safe-mode floor" in gov.reason


# -- the episode budget ------------------------------------------------------------------------

@pytest.mark.parametrize("steps_from", ["steps_left", "episode_steps"])
def test_the_episode_budget_is_never_exceeded(steps_from: str) -> None:
    # 200 steps = 25 chunks: ddim20 all along would take 100 J + idle, ddim10 50 J + idle
    joules, steps = 50.0, 200
    kw = {"episode_steps": steps} if steps_from == "episode_steps" else {}
    flight = Flight(governor(Budget(joules_per_episode=joules), **kw))
    for _ in range(3):
        flight.gov.reset_episode()
        n = len(flight.log)
        names = flight.fly(steps, episode=steps_from == "steps_left")
        spent = sum(e for _, e in flight.log[n:]) + IDLE_W * steps * DT
        assert spent <= 0.95 * joules
        assert spent > 0.8 * joules  # and the budget is used
        assert None not in names and names[0] == "ddim5" and "ddim20" not in names


def test_a_governor_that_ignored_the_episode_budget_would_fail(monkeypatch) -> None:
    monkeypatch.setattr(PowerGovernor, "_episode_misfit", lambda self, p, t, left: None)
    flight = Flight(governor(Budget(joules_per_episode=50.0)))
    flight.fly(200, episode=True)
    assert sum(e for _, e in flight.log) + IDLE_W * 200 * DT > 0.95 * 50.0


def test_the_governor_degrades_as_the_episode_energy_runs_out() -> None:
    events: list[dict] = []
    gov = PowerGovernor(points(), Budget(joules_per_episode=33.2), DT,
                        on_event=lambda name, severity="info", **f: events.append(
                            {"name": name, **f}))
    flight = Flight(gov)
    names = flight.fly(400)  # steps left unknown: greedy
    energy = [flight.gov.expected_energy_j(next(p for p in points() if p.name == n))
              if n else 0.0 for n in names]
    assert energy == sorted(energy, reverse=True)  # never gets dearer
    assert names[0] == "ddim20" and {"ddim10", "ddim5"} <= set(names) and names[-1] is None
    assert sum(e for _, e in flight.log) <= 0.95 * 33.2
    assert [e["to"] for e in events if e["name"] == "governor_state"] == ["degraded", "safe"]
    assert "this episode" in events[-1]["reason"]
    spent = sum(w[2] for w in gov.windows(flight.t))
    gov.reset_episode()  # a new episode: back to the best point, the history stays
    assert gov.choose(flight.t, None).name == "ddim20" and gov.state == "nominal"
    assert sum(w[2] for w in gov.windows(flight.t)) == pytest.approx(spent)


def test_both_budgets_together() -> None:
    watts, joules = 0.5 * UNCONSTRAINED_W, 40.0
    flight = Flight(governor(Budget(watts=watts, joules_per_episode=joules)))
    for _ in range(2):
        flight.gov.reset_episode()
        n = len(flight.log)
        flight.fly(200, episode=True)
        assert sum(e for _, e in flight.log[n:]) + IDLE_W * 200 * DT <= 0.95 * joules
    assert not over_budget(flight.log, watts)


def test_a_measured_overrun_raises_the_estimate() -> None:
    gov = governor(Budget(watts=1.1 * UNCONSTRAINED_W))
    p = gov.choose(0.0)
    assert p.name == "ddim20" and gov.expected_energy_j(p) == 4.0
    gov.record(0.0, 4.4)
    assert gov.expected_energy_j(p) == pytest.approx(4.4)
    gov.record(0.4, 9.0)  # no choose at 0.4: not attributed to a point
    assert gov.expected_energy_j(p) == pytest.approx(4.4)


def test_operating_point_power_and_windows_report() -> None:
    p = points()[0]
    assert p.period_s(DT) == pytest.approx(0.4)
    assert p.power_w(DT, 0.25) == pytest.approx(10.25) and p.power_w(DT) == pytest.approx(10.0)
    gov = governor(Budget(watts=20.0, window_s=1.0))
    assert gov.windows(5.0) == []
    gov.record(0.0, 1.0)
    gov.record(0.9999999999, 2.0)  # float jitter of 1.0 lands in the second window
    gov.record(1.0, 3.0)
    (a0, b0, j0, w0), (a1, b1, j1, w1) = gov.windows(1.5)
    assert (a0, b0, a1, b1) == (0.0, 1.0, 1.0, 2.0)
    assert j0 == pytest.approx(1.0 + IDLE_W) and j1 == pytest.approx(5.0 + IDLE_W * 0.5)
    assert w1 == pytest.approx(j1 / 1.0)


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, needle", [
    ({}, "watts or joules_per_episode"),
    ({"watts": -1.0}, "watts must be > 0"),
    ({"watts": 0.0}, "watts must be > 0"),
    ({"joules_per_episode": math.nan}, "joules_per_episode must be > 0"),
    ({"watts": "5"}, "watts must be > 0"),
    ({"watts": 1.0, "window_s": 0.0}, "window_s must be > 0"),
    ({"watts": 1.0, "margin": 1.5}, "margin must be in (0, 1]"),
    ({"watts": 1.0, "margin": 0.0}, "margin must be in (0, 1]"),
])
def test_bad_budgets_give_one_line_errors(kw: dict, needle: str) -> None:
    with pytest.raises(GovernorError) as err:
        Budget(**kw)
    assert isinstance(err.value, SpikeflightError)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("make, needle", [
    (lambda: PowerGovernor([], Budget(watts=1.0), DT), "no operating points"),
    (lambda: PowerGovernor(points() + points()[:1], Budget(watts=1.0), DT), "duplicate"),
    (lambda: PowerGovernor(points(), Budget(watts=1.0), 0.0), "control_dt_s"),
    (lambda: PowerGovernor(points(), Budget(watts=1.0), DT, idle_w=-1.0), "idle_w"),
    (lambda: PowerGovernor(points(replan=0), Budget(watts=1.0), DT), "replan"),
    (lambda: PowerGovernor(points(), {"watts": 1.0}, DT), "must be a Budget"),
])
def test_bad_governor_settings_give_one_line_errors(make, needle: str) -> None:
    with pytest.raises(GovernorError) as err:
        make()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_mission_time_must_not_go_back() -> None:
    gov = governor(Budget(watts=5.0))
    gov.record(1.0, 0.1)
    with pytest.raises(GovernorError, match="before the last record"):
        gov.record(0.5, 0.1)
    with pytest.raises(GovernorError, match="energy must be >= 0"):
        gov.record(2.0, -1.0)
