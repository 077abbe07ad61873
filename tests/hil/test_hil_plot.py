"""The HIL run plot: latency and events over the plant's run time, power against the budget
over the device's mission time."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest

from tools.hil_plot import figure

DT = 0.05


def _result() -> dict:
    plant = [
        {"seed": 1, "steps": 40, "latency_ticks": [0, 1, 2], "latencies_ms": [5.0, 0.5, 0.6],
         "lost": [], "corrupted_sensor": [7], "corrupted_actuator": []},
        {"seed": 2, "steps": 60, "latency_ticks": [0, 14], "latencies_ms": [4.0, 6.0],
         "lost": [10, 11, 12, 13], "corrupted_sensor": [], "corrupted_actuator": [3, 5]},
    ]
    device = {
        "link": {"events": [{"event": "safe_mode", "seed": 2, "tick": 12, "recovered_tick": 14},
                            {"event": "safe_mode", "seed": 2, "tick": 12, "live": True}]},
        "memory": {"upsets": [{"tick": 55, "section": "w", "bit": 3, "detected_tick": 60}]},
        "episodes_detail": [{"seed": 1, "chunk_t_s": [0.0, 0.1],
                             "chunk_energy_j": [1e-6, 2e-6]},
                            {"seed": 2, "chunk_t_s": [2.0], "chunk_energy_j": [4e-6],
                             "first_anomaly_step": 30}],
        "window_s": 1.0, "mission_s": 5.0, "budget_w": 3e-6,
        "budget_changes": [[1.0, 9e-7]], "energy_source": "cmos45-horowitz2014",
    }
    return {"plant": plant, "device": device}


@pytest.fixture
def fig():
    import matplotlib.pyplot as plt

    f = figure([("link-loss", _result()), ("nominal", _result())], "test")
    yield f
    plt.close(f)


def _colored(ax, color: str) -> list:
    return [p for p in ax.patches if mcolors.same_color(p.get_facecolor()[:3], color)]


def test_a_row_per_scenario_with_latency_left_and_power_right(fig) -> None:
    axes = fig.axes
    assert len(axes) == 4
    assert [a.get_title() for a in axes[::2]] == ["link-loss: latency and events",
                                                  "nominal: latency and events"]
    assert axes[1].get_title() == "link-loss: power against budget"


def test_latency_points_sit_at_their_run_time_and_events_are_marked(fig) -> None:
    ax = fig.axes[0]
    points = [ln for ln in ax.lines if ln.get_marker() == "."]
    x = np.concatenate([ln.get_xdata() for ln in points])
    y = np.concatenate([ln.get_ydata() for ln in points])
    np.testing.assert_allclose(x, np.array([0, 1, 2, 40, 54]) * DT)  # episode 2 starts at 40
    np.testing.assert_allclose(y, [5.0, 0.5, 0.6, 4.0, 6.0])
    bad = np.concatenate([ln.get_xdata() for ln in ax.lines if ln.get_marker() == "|"])
    np.testing.assert_allclose(sorted(bad), np.array([7, 43, 45]) * DT)
    (safe,) = _colored(ax, "orange")  # the live notice has no recovery: not a span
    np.testing.assert_allclose([safe.get_x(), safe.get_x() + safe.get_width()],
                               np.array([52, 54]) * DT)
    assert len(_colored(ax, "0.6")) == 4  # four lost ticks
    upset = [ln for ln in ax.lines if ln.get_label() == "upset injected"]
    assert upset and upset[0].get_xdata()[0] == pytest.approx(55 * DT)
    (flag,) = [ln for ln in ax.lines if ln.get_label() == "first anomaly flag"]
    assert flag.get_xdata()[0] == pytest.approx(70 * DT)  # episode 2 from 40, step 30
    deadline = [ln for ln in ax.lines if ln.get_label() == "deadline (real clock)"]
    assert deadline[0].get_ydata()[0] == pytest.approx(40.0)


def test_power_is_a_sliding_window_against_the_budget_in_force(fig) -> None:
    bx = fig.axes[1]
    (power,) = [ln for ln in bx.lines if ln.get_label().startswith("chunk power")]
    t, w = power.get_xdata(), power.get_ydata()
    at = {round(float(a), 3): float(b) for a, b in zip(t, w, strict=True)}
    assert at[0.1] == pytest.approx(3e-6)  # both chunks of the first second, / 1 s
    assert at[1.5] == 0.0 and at[2.0] == pytest.approx(4e-6)
    (budget,) = [ln for ln in bx.lines if ln.get_label().startswith("budget (")]
    limit = {round(float(a), 3): float(b)
             for a, b in zip(budget.get_xdata(), budget.get_ydata(), strict=True)}
    # the cut at 1 s holds only the windows that start at or after it (1 s windows)
    assert [limit[g] for g in (0.5, 1.5, 2.0, 4.0)] == [3e-6, 3e-6, 9e-7, 9e-7]
    (cut,) = [ln for ln in bx.lines if ln.get_label() == "budget change"]
    assert cut.get_xdata()[0] == 1.0
