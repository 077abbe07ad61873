"""DAgger: relabelled rollouts, the aggregated robomimic file, resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from hardware.sim.dataset import read_episodes
from policies.checkpoint import load_policy
from policies.dagger import relabelled_rollouts
from tests.tools.test_data_cli import assert_one_line_error, cli

SMALL = ("--hidden", "16,16", "--threads", "1", "-n", "30", "--round-iterations", "10",
         "--episodes", "2")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dagger")
    demos = root / "hatch.hdf5"
    assert cli("data", "collect", "--task", "hatch", "-n", "3", "-o", str(demos)).returncode == 0
    out = root / "run"
    res = cli("train", "dagger", "--task", "hatch", "--demos", str(demos), "--policy", "ann",
              "-o", str(out), "--rounds", "1", *SMALL)
    assert res.returncode == 0, res.stderr
    assert "round 1: rollouts (beta 0.500)" in res.stdout
    return demos, out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_aggregate_passes_data_info_with_provenance(run: tuple[Path, Path]) -> None:
    _, out = run
    info = cli("data", "info", str(out / "aggregate.hdf5"), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["sources"] == {"expert": 3, "dagger": 2}
    new = [ep for ep in read_episodes(out / "aggregate.hdf5") if ep.relabelled]
    assert {ep.provenance["round"] for ep in new} == {1}
    assert all(ep.provenance["beta"] == 0.5 and ep.provenance["labels"] == "expert"
               and ep.provenance["policy"].endswith("round_0") for ep in new)
    assert all(ep.executed_actions is not None and ep.states is not None for ep in new)
    state = json.loads((out / "dagger.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [0, 1]


def test_the_aggregate_trains_and_the_run_is_a_checkpoint(run: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    _, out = run
    res = cli("train", "bc", "--task", "hatch", "--demos", str(out / "aggregate.hdf5"),
              "--policy", "ann", "-o", str(tmp_path / "bc"), "-n", "5", "--hidden", "16,16",
              "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert "samples from 5 episodes" in res.stdout  # the failed relabelled ones count too
    ev = cli("eval", str(out), "--episodes", "1", "--ddim-steps", "2", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["policy"] == "ann"
    assert _digest(out / "policy.safetensors") == _digest(out / "round_1" / "policy.safetensors")


def test_started_again_it_resumes_and_adds_rounds(run: tuple[Path, Path]) -> None:
    demos, out = run
    kept = {p: _digest(out / p) for p in ("round_0/policy.safetensors",
                                          "round_1/relabelled.hdf5")}
    res = cli("train", "dagger", "--task", "hatch", "--demos", str(demos), "--policy", "ann",
              "-o", str(out), "--rounds", "2", *SMALL)
    assert res.returncode == 0, res.stderr
    assert "round 0:" not in res.stdout and "round 1:" not in res.stdout  # nothing redone
    assert "round 2: rollouts (beta 0.250)" in res.stdout
    assert {p: _digest(out / p) for p in kept} == kept
    sources = json.loads(cli("data", "info", str(out / "aggregate.hdf5"),
                             "--json").stdout)["sources"]
    assert sources == {"expert": 3, "dagger": 4}


def test_relabelled_steps_carry_the_experts_labels(run: tuple[Path, Path]) -> None:
    """With the expert executing every chunk (beta 1), executed and labelled actions are
    the same; with the learner executing (beta 0) they are not."""
    _, out = run
    policy, _ = load_policy(out)
    prov = {"source": "dagger", "labels": "expert"}
    (expert_ep,) = relabelled_rollouts(policy, "hatch", [7], beta=1.0, rng_seed=0,
                                       provenance=prov)
    np.testing.assert_array_equal(expert_ep.executed_actions, expert_ep.actions)
    assert expert_ep.success
    # the label's phase is recorded with every step: the expert's own episode goes
    # through all four hatch phases in order
    assert expert_ep.phases.shape == (expert_ep.length,)
    assert list(np.unique(expert_ep.phases)) == [0, 1, 2, 3]
    assert np.all(np.diff(expert_ep.phases) >= 0)
    (learner_ep,) = relabelled_rollouts(policy, "hatch", [7], beta=0.0, rng_seed=0,
                                        provenance=prov)
    assert not np.allclose(learner_ep.executed_actions, learner_ep.actions)


def test_dagger_needs_a_scripted_expert(tmp_path: Path) -> None:
    res = cli("train", "dagger", "--task", "tests.fixtures.toy_env:make_toy", "--demos",
              str(tmp_path / "x.hdf5"), "-o", str(tmp_path / "r"))
    assert_one_line_error(res, "DAgger needs a scripted expert")
    assert not (tmp_path / "r").exists()


def _outside_copy(demos: Path, path: Path) -> list[str]:
    """``demos`` as another tool might write it: ``gripper_pos`` named ``eef_pos``, no
    ``obs_keys``, no seeds; returns its fields in the environment's order."""
    import h5py

    path.write_bytes(demos.read_bytes())
    with h5py.File(path, "a") as fh:
        args = json.loads(fh["data"].attrs["env_args"])
        order = ["eef_pos" if k == "gripper_pos" else k for k in args.pop("obs_keys")]
        fh["data"].attrs["env_args"] = json.dumps(args)
        for name in fh["data"]:
            g = fh["data"][name]
            g["obs"].move("gripper_pos", "eef_pos")
            del g.attrs["seed"]
    return order


def test_dagger_takes_the_obs_keys_of_an_outside_file(run: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    demos, _ = run
    outside = tmp_path / "outside.hdf5"
    order = _outside_copy(demos, outside)
    args = ("train", "dagger", "--task", "hatch", "--demos", str(outside), "--policy", "ann",
            "--rounds", "1", *SMALL)
    res = cli(*args, "-o", str(tmp_path / "refused"))
    assert_one_line_error(res, "pass --obs-keys")
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "run"
    res = cli(*args, "-o", str(out), "--obs-keys", ",".join(order))
    assert res.returncode == 0, res.stderr
    episodes = read_episodes(out / "aggregate.hdf5")  # its own obs_keys: the env's names
    assert {tuple(ep.obs) for ep in episodes} == {tuple(read_episodes(demos)[0].obs)}
    np.testing.assert_array_equal(episodes[0].obs["gripper_pos"],
                                  read_episodes(demos)[0].obs["gripper_pos"])


def test_dagger_refuses_demos_without_a_success_and_writes_nothing(run: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    import h5py

    demos, _ = run
    failed = tmp_path / "failed.hdf5"
    failed.write_bytes(demos.read_bytes())
    with h5py.File(failed, "a") as fh:
        for name in fh["data"]:
            fh["data"][name].attrs["success"] = False
    res = cli("train", "dagger", "--task", "hatch", "--demos", str(failed), "--policy", "ann",
              "-o", str(tmp_path / "r"), *SMALL)
    assert_one_line_error(res, "none of its 3 episodes is successful")
    assert not (tmp_path / "r").exists()
