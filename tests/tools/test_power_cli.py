"""``spikeflight power``: profile with models, verdicts and their exit codes, exports,
re-rendering, side-by-side comparison, and sensor failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.fixtures.tiny_policy import train_tiny
from tests.tools.test_data_cli import assert_one_line_error, cli


@pytest.fixture(scope="module")
def profiled(flight_image, tmp_path_factory: pytest.TempPathFactory):
    image, pub = flight_image
    out = tmp_path_factory.mktemp("power")
    res = cli("power", "profile", str(image), "--pubkey", str(pub), "-n", "2",
              "-m", "cmos45-horowitz2014", "-m", "loihi1-davies2018", "-m", "cpu-board:rpi4",
              "--json", str(out / "run.json"), "--csv", str(out / "run.csv"),
              "--parquet", str(out / "run.parquet"), "--plot", str(out / "run.png"))
    assert res.returncode == 0, res.stderr
    return out, res, json.loads((out / "run.json").read_text())


def test_profile_accounts_per_chunk_episode_phase_and_model(profiled) -> None:
    out, res, rec = profiled
    totals = rec["totals"]
    assert set(totals) == {"cmos45-horowitz2014", "loihi1-davies2018", "cpu-board:rpi4"}
    cm = totals["cmos45-horowitz2014"]
    assert {"encode", "denoise", "decode", "world_model", "idle"} <= set(cm["phases"])
    assert sum(cm["phases"].values()) == pytest.approx(cm["j_total"])
    assert cm["j_per_chunk"] == pytest.approx(cm["j_total"] / len(rec["chunks"]))
    assert 1e-7 < cm["j_per_chunk"] < 1e-5  # microjoules per chunk at 45 nm
    assert totals["loihi1-davies2018"]["j_per_chunk"] > cm["j_per_chunk"]
    assert totals["cpu-board:rpi4"]["phases"]["idle"] > 0  # a board idles between chunks
    assert rec["sensor"] is None and "model estimate" in res.stdout
    assert rec["summary"]["episodes"] == 2


def test_exports_agree_with_the_record(profiled) -> None:
    out, _, rec = profiled
    rows = list(csv.DictReader((out / "run.csv").open()))
    assert len(rows) == len(rec["chunks"])
    assert float(rows[0]["cmos45-horowitz2014_j"]) == pytest.approx(
        rec["chunks"][0]["cmos45-horowitz2014"])
    table = pq.read_table(out / "run.parquet")
    assert table.num_rows == len(rec["chunks"])
    assert json.loads(table.schema.metadata[b"spikeflight"])["task"] == "hatch"
    assert (out / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fraction,code,needle", [(2.0, 0, "PASS"), (1.05, 3, "WARN"),
                                                  (0.5, 4, "over by")])
def test_budget_verdicts_set_the_exit_code(profiled, fraction: float, code: int,
                                           needle: str) -> None:
    out, _, rec = profiled
    watts = rec["totals"]["cmos45-horowitz2014"]["average_w"] * fraction
    res = cli("power", "report", str(out / "run.json"), "--budget-w", f"{watts:.6e}")
    assert res.returncode == code, res.stdout + res.stderr
    assert needle in res.stdout
    if code == 4:
        assert "(100.0%)" in res.stdout  # says by how much: twice the budget


def test_report_of_a_bad_file_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    assert_one_line_error(cli("power", "report", str(bad)), "not a profile record")


def test_compare_puts_two_images_side_by_side(flight_image, tmp_path: Path) -> None:
    image, pub = flight_image
    run = train_tiny(tmp_path / "ann", "ann")
    ann = tmp_path / "ann.sfimg"
    key = pub.with_suffix("")  # the fixture's private key sits beside its .pub
    ok = cli("compile", str(run), "--target", "cpu", "--key", str(key), "-o", str(ann),
             "--operating-points", "ddpm", "--ground-episodes", "1")
    assert ok.returncode == 0, ok.stderr
    res = cli("power", "compare", str(image), str(ann), "--pubkey", str(pub), "-n", "1",
              "--json", str(tmp_path / "cmp.json"))
    assert res.returncode == 0, res.stderr
    both = json.loads((tmp_path / "cmp.json").read_text())
    a = both["a"]["totals"]["cmos45-horowitz2014"]["j_per_chunk"]
    b = both["b"]["totals"]["cmos45-horowitz2014"]["j_per_chunk"]
    assert f"{a / b:.3f}" in res.stdout
    assert both["b"]["totals"]["loihi1-davies2018"] is None  # no Loihi figure for an ANN
    assert "n/a" in res.stdout


def test_missing_sensor_needs_allow_model(flight_image, tmp_path: Path) -> None:
    image, pub = flight_image
    out = tmp_path / "run.json"
    res = cli("power", "profile", str(image), "--pubkey", str(pub), "-n", "1",
              "--sensor", f"replay:{tmp_path / 'no-trace.csv'}", "--json", str(out))
    assert_one_line_error(res, "no-trace.csv", "--allow-model")
    assert not out.exists()
    res = cli("power", "profile", str(image), "--pubkey", str(pub), "-n", "1",
              "--sensor", f"replay:{tmp_path / 'no-trace.csv'}", "--allow-model",
              "--json", str(out))
    assert res.returncode == 0 and "energy models only" in res.stderr
    assert json.loads(out.read_text())["sensor"] is None


def test_unknown_model_fails_before_flying(flight_image, tmp_path: Path) -> None:
    image, pub = flight_image
    res = cli("power", "profile", str(image), "--pubkey", str(pub), "-m", "tpu-2031")
    assert_one_line_error(res, "unknown energy model 'tpu-2031'")


def test_replayed_sensor_trace_is_attributed_and_labelled(flight_image, tmp_path: Path) -> None:
    image, pub = flight_image
    trace = tmp_path / "trace.csv"
    rows = ["t_s,power_w"] + [f"{i * 0.001:.3f},2.0" for i in range(20_000)]  # 2 W for 20 s
    trace.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run.json"
    res = cli("power", "profile", str(image), "--pubkey", str(pub), "-n", "1",
              "--sensor", f"replay:{trace}", "--json", str(out))
    assert res.returncode == 0, res.stderr
    rec = json.loads(out.read_text())
    sen = rec["totals"]["sensor"]
    assert rec["sensor"]["source"].startswith("replay") and "dropped" in res.stdout
    assert sen["average_w"] == pytest.approx(2.0, rel=0.02)  # the trace's constant power
    busy = sum(r["sensor"] for r in rec["chunks"])
    assert busy == pytest.approx(sum(v for k, v in sen["phases"].items() if k != "idle"))
    assert sen["j_per_chunk"] == pytest.approx(2.0 * np.mean([r["seconds"] for r in
                                                              rec["chunks"]]), rel=0.25)
