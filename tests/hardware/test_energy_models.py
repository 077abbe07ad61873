"""Energy models per phase: formulas, consistency with the trainer's chunk estimate, board
profiles from files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hardware.energy import CMOS45, Layout
from hardware.energy_models import (
    BOARDS,
    EnergyModelError,
    PhaseCounts,
    get_model,
    load_board_profile,
)
from runtime.phases import chunk_phases, compute_phases

LAYOUT = Layout(obs_dim=23, obs_hidden=128, widths=(256, 256), action_size=28, micro_steps=4,
                sdli=True)


def test_formulas_per_model() -> None:
    p = PhaseCounts("denoise[3]", seconds=0.01, analog_macs=1000, synops=2000, spikes=50,
                    neuron_updates=400)
    assert get_model("cmos45-horowitz2014").joules(p) == pytest.approx((4.6e3 + 0.9 * 2e3) * 1e-12)
    chip = 23.6 * 2000 + 81 * 50 + 52 * 350 + 1.7 * 50
    assert get_model("loihi1-davies2018").joules(p) == pytest.approx((chip + 4.6e3) * 1e-12)
    assert get_model("loihi1-davies2018").joules(PhaseCounts("denoise[0]", ann_macs=10)) is None
    board = get_model("cpu-board:rpi4")
    assert board.joules(p) == pytest.approx(BOARDS["rpi4"].active_w * 0.01)
    idle = PhaseCounts("idle", seconds=2.0, compute=False)
    assert board.joules(idle) == pytest.approx(BOARDS["rpi4"].idle_w * 2.0)
    assert get_model("cmos45-horowitz2014").joules(idle) == 0


def test_phases_add_up_to_the_chunk_estimate_of_the_trainer() -> None:
    rates, ks = [0.2, 0.1], np.arange(19, -1, -1)
    per_step = np.array([[r * n * LAYOUT.micro_steps for r, n in zip(rates, LAYOUT.widths,
                                                                      strict=True)]] * len(ks))
    work = compute_phases(LAYOUT, ks, per_step, plan_s=0.003)
    model = get_model("cmos45-horowitz2014")
    total = sum(model.joules(p) for p in work)
    want = CMOS45.snn_joules(LAYOUT.analog_macs(20), LAYOUT.synops(20), rates, 4)
    assert total == pytest.approx(want, rel=1e-12)
    assert sum(p.seconds for p in work) == pytest.approx(0.003)
    phases = chunk_phases(work, decode_s=1e-4, guard_s=0.0, period_s=0.2)
    assert [p.name for p in phases[-3:]] == ["decode", "world_model", "idle"]
    assert phases[-1].seconds == pytest.approx(0.2 - 0.0031) and not phases[-1].compute
    ann = compute_phases(LAYOUT, ks, None, plan_s=0.001)
    assert sum(model.joules(p) for p in ann) == pytest.approx(CMOS45.ann_joules(
        LAYOUT.ann_macs(20)))


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "name: flightboard\nactive_w: 3.5\nidle_w: 1.25\nsource: bench meter 2026\n"),
    (".toml", 'name = "flightboard"\nactive_w = 3.5\nidle_w = 1.25\nsource = "bench meter"\n'),
])
def test_board_profile_files(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"board{suffix}"
    path.write_text(text)
    model = get_model(f"cpu-board:{path}")
    assert model.name == "cpu-board:flightboard" and model.active_w == 3.5
    assert model.joules(PhaseCounts("idle", seconds=4, compute=False)) == pytest.approx(5.0)


@pytest.mark.parametrize("text,needle", [
    ("name: x\nactive_w: 1\n", "missing idle_w"),
    ("name: x\nactive_w: fast\nidle_w: 1\n", "must be numbers"),
    ("name: x\nactive_w: -1\nidle_w: 1\n", ">= 0 W"),
    ("[not yaml", "not a valid profile file"),
])
def test_bad_profiles_and_names_fail_in_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(text)
    with pytest.raises(EnergyModelError, match=needle) as exc:
        load_board_profile(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    with pytest.raises(EnergyModelError, match="known: cmos45-horowitz2014"):
        get_model("tpu-2031")
