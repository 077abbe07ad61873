"""``spikeflight data collect`` / ``data info``: layout, atomic writes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hardware.sim.dataset import DatasetError, read_episodes, summarize

TOY = "tests.fixtures.toy_env:make_toy"
TOY_EXPERT = "tests.fixtures.toy_env:ToyExpert"
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300, **kw)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "toy.hdf5"
    res = cli("data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "--episodes", "12",
              "--seed", "5", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("collect ")]
    assert len(progress) == 10 and "100% 12/12" in progress[-1], res.stderr  # plain lines
    return out


def test_collect_writes_robomimic_layout(toy_file: Path) -> None:
    with h5py.File(toy_file) as fh:
        args = json.loads(fh["data"].attrs["env_args"])
        assert args["env_name"] == TOY and args["obs_keys"] == ["obs"]
        assert args["expert_phases"] == []  # the toy expert names no phases: none recorded
        names = sorted(fh["data"], key=lambda k: int(k.split("_")[1]))
        assert names == [f"demo_{i}" for i in range(12)]
        g = fh["data/demo_3"]
        n = g.attrs["num_samples"]
        assert g["obs/obs"].shape == (n, 3) and g["actions"].shape == (n, 2)
        assert g["rewards"].shape == (n,) and g["dones"].shape == (n,)
        assert "phases" not in g
        assert g.attrs["seed"] == 8  # seed 5 + episode 3
        assert fh["data"].attrs["total"] == sum(fh[f"data/{k}"].attrs["num_samples"]
                                                for k in names)
        assert len(fh["mask/valid"]) == 1 and len(fh["mask/train"]) == 11
        # a successful episode ends with done = 1 on its last step only
        if g.attrs["success"]:
            assert g["dones"][-1] == 1 and g["dones"][:-1].sum() == 0


def test_collect_replays_identically(toy_file: Path) -> None:
    """The stored actions replayed from the stored seed reproduce the stored obs."""
    from tests.fixtures.toy_env import PointReach

    ep = read_episodes(toy_file)[2]
    env = PointReach()
    obs, _ = env.reset(seed=ep.seed)
    for t in range(ep.length):
        np.testing.assert_allclose(obs, ep.obs["obs"][t])
        obs, *_ = env.step(ep.actions[t])


def test_info_json_and_table(toy_file: Path) -> None:
    res = cli("data", "info", str(toy_file), "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    episodes = read_episodes(toy_file)
    assert s["episodes"] == 12 == len(episodes)
    assert s["steps"] == sum(ep.length for ep in episodes)
    assert s["success_rate"] == pytest.approx(np.mean([ep.success for ep in episodes]))
    assert s["success_rate"] > 0.9
    allobs = np.concatenate([ep.obs["obs"] for ep in episodes])
    assert s["ranges"]["obs/obs"]["max"] == pytest.approx(allobs.max(0).tolist())
    table = cli("data", "info", str(toy_file))
    assert table.returncode == 0 and "episodes 12" in table.stdout and "obs/obs" in table.stdout


def test_corrupt_file_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.hdf5"
    bad.write_bytes(b"not an hdf5 file at all" * 100)
    assert_one_line_error(cli("data", "info", str(bad)), str(bad), "not a readable HDF5")


def test_truncated_file_one_line_error(toy_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.hdf5"
    raw = toy_file.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    res = cli("data", "info", str(cut))
    assert_one_line_error(res, str(cut))
    assert "truncated" in res.stderr or "corrupt" in res.stderr


@pytest.mark.parametrize("dataset", ["data/demo_1/actions", "data/demo_3/rewards"])
def test_a_flipped_byte_in_a_dataset_is_caught_by_its_checksum(toy_file: Path, tmp_path: Path,
                                                               dataset: str) -> None:
    """Demonstrations carry HDF5's Fletcher-32 checksums: one flipped bit inside any
    dataset's data is a one-line error naming the file and the dataset, for ``data info``
    and for every reader (``read_episodes``: training, DAgger, world models)."""
    with h5py.File(toy_file) as fh:
        ds = fh[dataset]
        assert ds.fletcher32
        offset = ds.id.get_chunk_info(0).byte_offset
    raw = bytearray(toy_file.read_bytes())
    raw[offset + 3] ^= 0x10
    bad = tmp_path / "flipped.hdf5"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=f"dataset /{dataset} is corrupt"):
        read_episodes(bad)
    if dataset.endswith("actions"):  # data info reads the actions too
        assert_one_line_error(cli("data", "info", str(bad)), str(bad), f"/{dataset} is corrupt")


def _flip_at(src: Path, needle: bytes, dst: Path) -> Path:
    """``src`` with one bit flipped inside the first occurrence of ``needle``."""
    raw = bytearray(src.read_bytes())
    at = raw.find(needle)
    assert at >= 0, needle
    raw[at + 2] ^= 0x01
    dst.write_bytes(bytes(raw))
    return dst


def test_a_flipped_byte_in_env_args_is_caught(toy_file: Path, tmp_path: Path) -> None:
    """Strings are stored fixed-length, inside checksummed object headers: a
    variable-length string sits in HDF5's global heap, where a flip in ``env_args``
    changed what was read without any error."""
    with h5py.File(toy_file) as fh:
        assert h5py.check_string_dtype(fh["data"].attrs.get_id("env_args").dtype).length
    bad = _flip_at(toy_file, b'"env_name"', tmp_path / "flipped.hdf5")
    with pytest.raises(DatasetError, match=f"{bad}: corrupt HDF5 content .*checksum"):
        read_episodes(bad)


def test_the_split_masks_are_checksummed_fixed_length_names(toy_file: Path,
                                                            tmp_path: Path) -> None:
    with h5py.File(toy_file) as fh:
        assert fh["mask/train"].fletcher32 and fh["mask/train"][0] == b"demo_1"
        start = fh["mask/valid"].id.get_chunk_info(0).byte_offset
    raw = bytearray(toy_file.read_bytes())
    raw[start] ^= 0x01
    bad = tmp_path / "mask.hdf5"
    bad.write_bytes(bytes(raw))
    with h5py.File(bad) as fh, pytest.raises(OSError, match="filter returned failure"):
        fh["mask/valid"][()]  # what robomimic reads for its split


def test_wrong_layout_names_the_field(toy_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(toy_file.read_bytes())
    with h5py.File(broken, "a") as fh:
        del fh["data/demo_4/rewards"]
    with pytest.raises(DatasetError, match=r"data/demo_4 has no 'rewards'"):
        summarize(broken)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_collection_leaves_old_file_intact(toy_file: Path, tmp_path: Path, sig) -> None:
    target = tmp_path / "demos.hdf5"
    target.write_bytes(toy_file.read_bytes())
    before = target.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "data", "collect", "--task", TOY, "--expert",
         TOY_EXPERT, "--episodes", "500", "-o", str(target)],
        cwd=ROOT, env={**os.environ, "SPIKEFLIGHT_TOY_STEP_DELAY": "0.002"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".demos.hdf5.*.partial")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".demos.hdf5.*.partial")), "collection never started writing"
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert target.read_bytes() == before
    summarize(target)  # still a valid file
    if sig == signal.SIGTERM:  # a catchable signal also cleans up the temporary file
        assert not list(tmp_path.glob(".demos.hdf5.*.partial"))


def test_unknown_task_lists_valid_ones(tmp_path: Path) -> None:
    out = tmp_path / "x.hdf5"
    res = cli("data", "collect", "--task", "hatchh", "-o", str(out))
    assert_one_line_error(res, "'hatchh'", "hatch, stow, cap, panel, drawer")
    assert not out.exists()


@pytest.mark.parametrize(("ref", "needle"), [
    ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
    ("tests.fixtures.toy_env:make_nothing", "has no attribute 'make_nothing'"),
    ("tests.fixtures.toy_env:NOT_CALLABLE", "is not callable"),
    ("tests.fixtures.toy_env:make_broken", "RuntimeError: simulator license expired"),
    ("tests.fixtures.toy_env:make_discrete", "action space is Discrete, not Box"),
    ("tests.fixtures.toy_env:", "not of the form module:callable"),
])
def test_bad_module_callable_names_what_failed(tmp_path: Path, ref: str, needle: str) -> None:
    out = tmp_path / "x.hdf5"
    res = cli("data", "collect", "--task", ref, "--expert", TOY_EXPERT, "-o", str(out))
    assert_one_line_error(res, needle)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_byo_env_without_expert_is_refused(tmp_path: Path) -> None:
    res = cli("data", "collect", "--task", TOY, "-o", str(tmp_path / "x.hdf5"))
    assert_one_line_error(res, "has no scripted expert", "--expert")


def test_noise_injection_records_expert_labels(tmp_path: Path) -> None:
    """--noise: the env executes noisy actions, the file keeps the expert's labels and
    what was executed; replaying the executed actions reproduces the observations."""
    from tests.fixtures.toy_env import PointReach, ToyExpert

    out = tmp_path / "noisy.hdf5"
    res = cli("data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "-n", "2", "--noise",
              "0.3", "-o", str(out))
    assert res.returncode == 0, res.stderr
    ep = read_episodes(out)[0]
    assert ep.executed_actions is not None
    assert not np.allclose(ep.executed_actions[:, :-1], ep.actions[:, :-1])
    np.testing.assert_array_equal(ep.executed_actions[:, -1], ep.actions[:, -1])  # grip clean
    env, expert = PointReach(), ToyExpert(None)
    obs, _ = env.reset(seed=ep.seed)
    for t in range(ep.length):
        np.testing.assert_allclose(obs, ep.obs["obs"][t])
        np.testing.assert_allclose(ep.actions[t], expert.act(obs))  # the label is the expert's
        obs, *_ = env.step(ep.executed_actions[t])
    with h5py.File(out) as fh:
        assert json.loads(fh["data"].attrs["env_args"])["action_noise_std"] == 0.3


@pytest.mark.parametrize(("flags", "hold"), [((), 4), (("--noise-per-step",), 1)])
def test_noise_is_held_for_a_chunk_unless_asked_per_step(tmp_path: Path, flags: tuple,
                                                         hold: int) -> None:
    """One noise draw per 4-step chunk by default, a fresh one each step with
    --noise-per-step; the provenance says which."""
    out = tmp_path / "noisy.hdf5"
    res = cli("data", "collect", "--task", "hatch", "-n", "1", "--noise", "0.02", *flags,
              "-o", str(out))
    assert res.returncode == 0, res.stderr
    ep = read_episodes(out)[0]
    delta = (ep.executed_actions - ep.actions)[:, :-1]
    inside = np.abs(ep.executed_actions[:, :-1]) < 1.0  # not clipped at the bounds
    steps = np.arange(ep.length)
    for t in steps[1:]:
        same_draw = t // hold == (t - 1) // hold
        ok = inside[t] & inside[t - 1]
        assert np.allclose(delta[t][ok], delta[t - 1][ok]) == same_draw, t
    assert ep.provenance["source"] == "expert+noise" and ep.provenance["noise_hold"] == hold
    with h5py.File(out) as fh:
        assert json.loads(fh["data"].attrs["env_args"])["action_noise_hold"] == hold
