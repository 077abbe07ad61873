"""``spikeflight compile``: the shipped policy compiles with every conformance check passing;
targets carry their graphs; limits and bad input fail in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from compiler.export import read_nir
from policies.checkpoint import shipped
from runtime.golden import read_golden
from runtime.image import read_image, verify_image
from runtime.keys import load_public_key
from runtime.loader import unpack
from tests.fixtures.inproc import cli_inproc
from tests.fixtures.tiny_policy import train_tiny
from tests.tools.test_data_cli import assert_one_line_error, cli

SHIPPED = shipped("hatch")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "flight"
    res = cli("keys", "generate", "-o", str(path))
    assert res.returncode == 0, res.stderr
    return path


@pytest.fixture(scope="module")
def shipped_image(key: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("img") / "hatch.sfimg"
    report = out.with_suffix(".json")
    res = cli("compile", str(SHIPPED), "--target", "loihi2", "--key", str(key), "-o", str(out),
              "--report-json", str(report), "--nir", str(out.with_suffix(".nir")))
    assert res.returncode == 0, res.stderr
    return out, res, json.loads(report.read_text())


def test_shipped_policy_compiles_for_loihi2_with_every_check_passing(shipped_image, key) -> None:
    out, res, report = shipped_image
    image = verify_image(out.read_bytes(), load_public_key(key.with_name(key.name + ".pub")))
    m = image.manifest
    assert m["target"] == "loihi2" and m["task"] == "hatch" and m["kind"] == "sdp-sdli"
    conf = m["conformance"]
    assert conf["onnx_float_vs_torch"]["samples"] == 1000
    assert conf["onnx_float_vs_torch"]["max_abs_error"] <= 1e-5
    fixed = conf["onnx_fixed_vs_lava"]
    assert fixed["vectors"] >= 100 and fixed["mismatches"] == 0 and fixed["values"] > 100_000
    assert conf["lava_float_vs_onnx_float"]["within_tol"] == 1.0
    assert 0 < conf["quantized_vs_float"]["action_rmse"] < 0.2
    assert set(image.sections) == {"net.npz", "chunk.onnx", "core.npz", "chunk_fixed.onnx",
                                   "golden.npz", "selftest.npz", "tensors.bin"}
    policy = unpack(image)
    golden = read_golden(policy)
    assert golden["a_in"].shape[0] >= 100 and golden["spikes2"].shape == (128, 4, 256)
    rasters = policy.core.run(golden["a_in"].transpose(1, 0, 2))  # Lava's, bit for bit
    assert all(np.array_equal(r.transpose(1, 0, 2), golden[f"spikes{i + 1}"])
               for i, r in enumerate(rasters))
    assert "lif1" in read_nir(out.with_suffix(".nir")).nodes  # the NIR graph, beside it
    rows = m["report"]
    assert [r["layer"] for r in rows] == ["lif1", "lif2"] and rows[1]["groups"] == 8
    assert all(0.02 < r["firing_rate"] < 0.5 for r in rows)
    assert "compile report" in res.stdout and "0 mismatching" in res.stdout
    points = {p["name"]: p for p in m["operating_points"]}
    assert list(points) == ["ddpm20-r2", "ddpm20", "ddim10", "ddim5", "ddim3"]
    assert points["ddpm20-r2"]["replan"] == 2 and points["ddpm20"]["replan"] == 4
    energies = [p["energy_j"] for p in list(points.values())[1:]]
    assert energies == sorted(energies, reverse=True) and energies[-1] > 0
    assert points["ddpm20"]["success_rate"] >= 0.7 and points["ddpm20"]["ground_episodes"] == 20
    assert report["manifest"]["conformance"] == conf and report["compile_seconds"] > 0
    stages = report["stage_seconds"]  # every stage timed, in order, summing to the compile
    assert list(stages)[0] == "export to NIR and fold" and list(stages)[-1] == "sign and pack"
    assert any(s.startswith("operating points") for s in stages)
    assert all(t >= 0 for t in stages.values())
    assert sum(stages.values()) <= report["compile_seconds"]
    assert "compile time per stage" in res.stdout


@pytest.mark.parametrize("target,present,absent", [
    ("cpu", {"chunk.onnx", "step.onnx"}, {"core.npz", "chunk_fixed.onnx"}),
    ("cpu-fixed", {"core.npz", "chunk_fixed.onnx"}, {"chunk.onnx"}),
])
def test_targets_carry_their_graphs(tmp_path: Path, key: Path, target: str, present: set,
                                    absent: set) -> None:
    run = train_tiny(tmp_path / "run", "sdp-sdli")
    out = tmp_path / f"{target}.sfimg"
    res = cli("compile", str(run), "--target", target, "--key", str(key), "-o", str(out),
              "--operating-points", "ddpm,5", "--ground-episodes", "2")
    assert res.returncode == 0, res.stderr
    image = read_image(out.read_bytes())
    assert present <= set(image.sections) and not absent & set(image.sections)
    assert image.header.target == target


@pytest.mark.parametrize("prediction", ["sample", pytest.param("v", marks=pytest.mark.slow)])
def test_x0_and_v_predicting_policies_compile_with_their_prediction_in_the_image(
        tmp_path: Path, key: Path, prediction: str) -> None:
    """A denoiser that predicts the clean chunk or the velocity passes the same
    conformance checks (torch vs ONNX float, ONNX fixed point vs Lava) and the runtime
    samples it as such."""
    run = train_tiny(tmp_path / "run", "sdp", prediction=prediction)
    assert json.loads((run / "config.json").read_text())["policy"]["prediction"] == prediction
    out = tmp_path / "x0.sfimg"
    res = cli("compile", str(run), "--target", "cpu-fixed", "--key", str(key), "-o", str(out),
              "--operating-points", "ddpm", "--ground-episodes", "1")
    assert res.returncode == 0, res.stderr
    pub = load_public_key(key.with_name(key.name + ".pub"))
    policy = unpack(verify_image(out.read_bytes(), pub))
    assert policy.manifest["policy"]["prediction"] == prediction
    assert policy.sampler.prediction == prediction


def test_ann_twin_compiles_for_cpu_only(tmp_path: Path, key: Path) -> None:
    run = train_tiny(tmp_path / "ann", "ann")
    ok = cli("compile", str(run), "--target", "cpu", "--key", str(key), "-o",
             str(tmp_path / "ann.sfimg"), "--operating-points", "ddpm", "--ground-episodes", "2")
    assert ok.returncode == 0, ok.stderr
    res = cli_inproc("compile", str(run), "--target", "loihi2", "--key", str(key), "-o",
                     str(tmp_path / "no.sfimg"))
    assert_one_line_error(res, "ANN twin", "--target cpu")
    assert not (tmp_path / "no.sfimg").exists()


def test_network_beyond_the_chip_fails_with_every_violation_and_writes_nothing(
        tmp_path: Path, key: Path) -> None:
    run = train_tiny(tmp_path / "big", "sdp", iterations=3, hidden=(4100, 16), lif_beta=0.99999)
    weights = load_file(run / "policy.safetensors")
    weights["denoiser.hidden.0.weight"][:, 0] *= 1e5  # one giant weight per row
    save_file(weights, run / "policy.safetensors")
    out = tmp_path / "big.sfimg"
    out.write_bytes(b"previous image")
    res = cli_inproc("compile", str(run), "--target", "loihi2", "--key", str(key), "-o",
                     str(out))
    assert_one_line_error(res, "hardware limit violation", "fan-in axons per core", "4100",
                          "lif1: leak", "lif2: leak", "rounding to 0")
    assert out.read_bytes() == b"previous image"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".big")] == []


@pytest.mark.parametrize("args,needle", [
    (["--target", "fpga"], "--target must be one of"),
    (["--key", "missing-key"], "missing-key"),
    (["--operating-points", "ddpm,fast"], "'fast' is not"),
    (["--operating-points", "ddpm,50"], "must be in 1..20"),
    (["--operating-points", "ddpm/9"], "actions per chunk must be in 1..4"),
])
def test_bad_arguments_fail_in_one_line(tmp_path: Path, key: Path, args: list[str],
                                        needle: str) -> None:
    base = {"--target": "loihi2", "--key": str(key), "--operating-points": "ddpm"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = str(tmp_path / value) if flag == "--key" else value
    out = tmp_path / "x.sfimg"
    res = cli_inproc("compile", str(SHIPPED), *[a for kv in base.items() for a in kv], "-o",
                     str(out))
    assert_one_line_error(res, needle)
    assert not out.exists()


def test_not_a_run_directory_and_a_public_key_are_refused(tmp_path: Path, key: Path) -> None:
    out = tmp_path / "x.sfimg"
    res = cli_inproc("compile", str(tmp_path), "--key", str(key), "-o", str(out))
    assert_one_line_error(res, "not a training run directory")
    res = cli_inproc("compile", str(SHIPPED), "--key", str(key.with_name(key.name + ".pub")), "-o",
              str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not out.exists()


def test_tampered_compiled_image_is_caught_by_section(shipped_image, key: Path,
                                                      tmp_path: Path) -> None:
    out, _, _ = shipped_image
    data = bytearray(out.read_bytes())
    image = read_image(bytes(data))
    entry = next(s for s in image.manifest["sections"] if s["name"] == "core.npz")
    start = image.header.sections_offset + entry["offset"]
    weights = image.arrays("core.npz")["weights.0"].tobytes()
    start += image.sections["core.npz"].index(weights) + len(weights) // 2
    data[start] ^= 0x01  # one bit of one integer weight (chunk_fixed.onnx's, too)
    bad = tmp_path / "bad.sfimg"
    bad.write_bytes(bytes(data))
    res = cli("image", "verify", str(bad), "--pubkey", str(key.with_name(key.name + ".pub")))
    assert res.returncode == 1 and "section 'core.npz'" in res.stderr, res.stderr
    good = cli("image", "verify", str(out), "--pubkey", str(key.with_name(key.name + ".pub")))
    assert good.returncode == 0 and "OK" in good.stdout
