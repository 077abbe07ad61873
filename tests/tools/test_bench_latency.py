"""``bench latency --json``: one JSON object with every backend's median and p99, its
speed-up against snnTorch and its ratio to the numpy bound, batched rows included."""

from __future__ import annotations

import json
import subprocess

from typer.testing import CliRunner

from tests.fixtures.device import SPIKEFLIGHT
from tools.cli import app


def test_bench_latency_json_reports_every_backend_against_the_bound() -> None:
    res = CliRunner().invoke(app, ["bench", "latency", "--chunks", "10", "--batches", "1,4",
                                   "--json"])
    assert res.exit_code in (0, 1), res.output
    out = json.loads(res.stdout)
    want = {"snntorch_eager", "onnx_float", "onnx_fixed", "ann_twin_onnx", "matvec",
            "onnx_float_b1", "onnx_float_b4", "onnx_fixed_b1", "onnx_fixed_b4"}
    assert set(out) == want
    for d in out.values():
        assert 0 < d["median_ms"] <= d["p99_ms"]
        assert abs(d["ratio_to_matvec"] * out["matvec"]["median_ms"] - d["median_ms"]) < 1e-9
    assert out["matvec"]["ratio_to_matvec"] == 1.0


def test_bench_latency_refuses_bad_batch_sizes() -> None:
    for bad, why in (("4,x", "comma-separated integers"), ("0", "between 1 and 1024")):
        res = subprocess.run([SPIKEFLIGHT, "bench", "latency", "--batches", bad],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
        assert f"--batches '{bad}'" in res.stderr and why in res.stderr


def test_backends_take_turns_in_blocks_of_calls() -> None:
    """Each function runs a block of items in a row (warm, as chunk after chunk in
    flight), and the blocks alternate, so a change of load touches every function."""
    from tools.latency import _side_by_side

    calls: list[tuple[str, int]] = []
    fns = {name: (lambda item, name=name: calls.append((name, item))) for name in "ab"}
    out = _side_by_side(fns, list(range(25)), warmup=0, block=10)
    assert [len(v) for v in out.values()] == [25, 25]
    names = "".join(name for name, _ in calls)
    assert names == "a" * 10 + "b" * 10 + "a" * 10 + "b" * 10 + "a" * 5 + "b" * 5
    assert [i for name, i in calls if name == "b"] == list(range(25))
