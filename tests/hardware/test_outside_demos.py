"""Demonstration files written by other tools (robomimic layout, robosuite key names,
no ``obs_keys`` attribute) load in the environment's observation order, or are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hardware.sim.dataset import read_episodes, summarize
from hardware.sim.obs_order import ObsOrderError
from tests.fixtures import robosuite_like

FIX = "tests.fixtures.robosuite_like"
SEEDS = (11, 12, 13)
ROBOMIMIC_NAME = {"object-state": "object"}  # robomimic renames robosuite's object-state


def write_outside_file(path: Path, factory: str, seeds=SEEDS, with_seeds: bool = True) -> None:
    """A robomimic-layout file as another tool writes it: one dataset per field (HDF5
    lists them alphabetically), robomimic's field names, env_args without obs_keys."""
    env = getattr(robosuite_like, factory)()
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as fh:
        data = fh.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "PickLike", "type": 1,
                                             "env_kwargs": {}})
        for i, seed in enumerate(seeds):
            env.reset(seed=seed)
            rows, acts = [], []
            for _ in range(8):
                rows.append(env.fields_now())
                a = rng.uniform(-1, 1, 2)
                acts.append(a)
                env.step(a)
            g = data.create_group(f"demo_{i}")
            obs = g.create_group("obs")
            for name in rows[0]:
                obs.create_dataset(ROBOMIMIC_NAME.get(name, name),
                                   data=np.array([r[name] for r in rows]))
            g.create_dataset("actions", data=np.array(acts))
            g.create_dataset("rewards", data=np.zeros(8))
            g.create_dataset("dones", data=np.r_[np.zeros(7), 1].astype(np.uint8))
            g.attrs["num_samples"] = 8
            g.attrs["success"] = True
            if with_seeds:
                g.attrs["seed"] = seed


def flat_first(episode) -> np.ndarray:
    return np.concatenate([v[0] for v in episode.obs.values()])


def reset_obs(factory: str, seed: int) -> np.ndarray:
    return getattr(robosuite_like, factory)().reset(seed=seed)[0]


@pytest.mark.parametrize(("factory", "source"), [("make_keyed", "environment"),
                                                 ("make_plain", "matched env.reset(seed)")])
def test_outside_file_loads_in_the_environments_order(tmp_path: Path, factory: str,
                                                      source: str) -> None:
    path = tmp_path / "outside.hdf5"
    write_outside_file(path, factory)
    with h5py.File(path) as fh:  # HDF5's own listing is alphabetical: not the env's order
        assert list(fh["data/demo_0/obs"]) == ["object", "robot0_eef_pos",
                                               "robot0_gripper_qpos"]
    episodes = read_episodes(path, f"{FIX}:{factory}")
    assert list(episodes[0].obs) == ["robot0_eef_pos", "object", "robot0_gripper_qpos"]
    for ep, seed in zip(episodes, SEEDS, strict=True):
        np.testing.assert_array_equal(flat_first(ep), reset_obs(factory, seed))
    info = summarize(path, f"{FIX}:{factory}")
    assert info["obs_order"] == source and info["obs_keys"][0] == "robot0_eef_pos"


def test_obs_keys_take_robosuite_or_robomimic_names(tmp_path: Path) -> None:
    path = tmp_path / "outside.hdf5"
    write_outside_file(path, "make_plain")
    for name in ("object-state", "object"):
        eps = read_episodes(path, obs_keys=["robot0_eef_pos", name, "robot0_gripper_qpos"])
        np.testing.assert_array_equal(flat_first(eps[0]), reset_obs("make_plain", SEEDS[0]))
    with pytest.raises(ObsOrderError, match="'cube_pos', which the file does not hold "
                       r"\(its fields: object, robot0_eef_pos, robot0_gripper_qpos\)"):
        read_episodes(path, obs_keys=["cube_pos"])


def test_ambiguous_order_is_refused_naming_the_candidates(tmp_path: Path) -> None:
    path = tmp_path / "outside.hdf5"
    write_outside_file(path, "make_ambiguous")
    with pytest.raises(ObsOrderError, match=r"ambiguous, 2 orders reproduce .*reset\(seed\) "
                       r"\(robot0_eef_pos,object,robot0_gripper_qpos,object_vel,robot0_eef_vel;"
                       r" robot0_eef_pos,object,robot0_gripper_qpos,robot0_eef_vel,object_vel\)"
                       ": pass --obs-keys"):
        read_episodes(path, f"{FIX}:make_ambiguous")


@pytest.mark.parametrize(("task", "seeds", "needle"), [
    (None, True, "no environment was given to take it from: pass --obs-keys with the "
     "fields object, robot0_eef_pos, robot0_gripper_qpos"),
    (f"{FIX}:make_plain", False, "the demos record no seeds"),
    ("tests.fixtures.toy_env:make_toy", True, "no order of its observation fields "
     "reproduces"),
])
def test_unknown_order_is_refused(tmp_path: Path, task, seeds: bool, needle: str) -> None:
    path = tmp_path / "outside.hdf5"
    write_outside_file(path, "make_plain", with_seeds=seeds)
    with pytest.raises(ObsOrderError, match=needle.replace("(", r"\(")):
        read_episodes(path, task)
    assert summarize(path)["obs_order"] == "file listing (unverified)"  # reports still work


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_trains_on_an_outside_file_and_refuses_an_ambiguous_one(tmp_path: Path) -> None:
    plain, ambiguous = tmp_path / "plain.hdf5", tmp_path / "ambiguous.hdf5"
    write_outside_file(plain, "make_plain")
    write_outside_file(ambiguous, "make_ambiguous")
    res = cli("data", "info", str(plain), "--task", f"{FIX}:make_plain", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["obs_order"] == "matched env.reset(seed)"
    out = tmp_path / "run"
    res = cli("train", "bc", "--task", f"{FIX}:make_plain", "--demos", str(plain), "-o",
              str(out), "-n", "3", "--threads", "1", "--hidden", "16,16", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    assert (out / "policy.safetensors").exists()
    out2 = tmp_path / "run2"
    res = cli("train", "bc", "--task", f"{FIX}:make_ambiguous", "--demos", str(ambiguous),
              "-o", str(out2), "-n", "3", "--threads", "1")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "ambiguous" in lines[0], res.stderr
    assert not out2.exists()
    res = cli("train", "bc", "--task", f"{FIX}:make_ambiguous", "--demos", str(ambiguous),
              "-o", str(out2), "-n", "3", "--threads", "1", "--hidden", "16,16",
              "--batch-size", "8", "--obs-keys",
              "robot0_eef_pos,object-state,robot0_gripper_qpos,robot0_eef_vel,object_vel")
    assert res.returncode == 0, res.stderr


def test_world_model_training_takes_the_order_too(tmp_path: Path) -> None:
    ambiguous = tmp_path / "ambiguous.hdf5"
    write_outside_file(ambiguous, "make_ambiguous")
    args = ["train", "world-model", "--task", f"{FIX}:make_ambiguous", "-d", str(ambiguous),
            "-n", "2", "--members", "1", "--hidden", "8", "--threads", "1"]
    res = cli(*args, "-o", str(tmp_path / "wm"))
    assert res.returncode == 2 and "ambiguous" in res.stderr and not (tmp_path / "wm").exists()
    res = cli(*args, "-o", str(tmp_path / "wm"), "--obs-keys",
              "robot0_eef_pos,object,robot0_gripper_qpos,robot0_eef_vel,object_vel")
    assert res.returncode == 0, res.stderr


def test_many_equal_fields_are_ambiguous_without_enumerating_every_order() -> None:
    from hardware.sim.obs_order import MAX_CANDIDATES, _orders_matching

    fields = {f"f{i}": np.zeros(2) for i in range(12)}  # 12! orders would match
    with pytest.raises(ObsOrderError, match=f"more than {MAX_CANDIDATES} orders"):
        _orders_matching(np.zeros(24), fields)
    assert _orders_matching(np.arange(4.0), {"a": np.array([2.0, 3.0]),
                                             "b": np.array([0.0, 1.0])}) == [["b", "a"]]


def test_a_dict_observation_space_is_flattened_in_its_order_with_named_fields() -> None:
    from hardware.sim.layout import obs_fields
    from hardware.sim.registry import make_env

    env = make_env(f"{FIX}:make_dict")
    assert env.observation_space.shape == (9,)
    assert [(f.name, f.start, f.size) for f in obs_fields(env)] == [
        ("robot0_eef_pos", 0, 3), ("object-state", 3, 4), ("robot0_gripper_qpos", 7, 2)]
    obs, _ = env.reset(seed=SEEDS[0])
    np.testing.assert_array_equal(obs, reset_obs("make_plain", SEEDS[0]))
    assert env.step(np.zeros(2))[0].shape == (9,)


def test_an_outside_file_of_a_dict_env_loads_in_the_spaces_order(tmp_path: Path) -> None:
    path = tmp_path / "outside.hdf5"
    write_outside_file(path, "make_plain")
    episodes = read_episodes(path, f"{FIX}:make_dict")
    assert list(episodes[0].obs) == ["robot0_eef_pos", "object", "robot0_gripper_qpos"]
    assert summarize(path, f"{FIX}:make_dict")["obs_order"] == "environment"


def test_collecting_from_a_dict_env_names_every_field(tmp_path: Path) -> None:
    out = tmp_path / "dict.hdf5"
    res = cli("data", "collect", "--task", f"{FIX}:make_dict", "--expert", f"{FIX}:PickExpert",
              "--episodes", "3", "-o", str(out))
    assert res.returncode == 0, res.stderr
    episodes = read_episodes(out)
    assert list(episodes[0].obs) == ["robot0_eef_pos", "object-state", "robot0_gripper_qpos"]
    np.testing.assert_array_equal(flat_first(episodes[0]), reset_obs("make_plain", 0))


def test_a_dict_space_with_a_field_that_is_not_a_box_is_refused(tmp_path: Path) -> None:
    res = cli("data", "collect", "--task", f"{FIX}:make_dict_discrete", "--expert",
              f"{FIX}:PickExpert", "--episodes", "1", "-o", str(tmp_path / "x.hdf5"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (f"error: '{FIX}:make_dict_discrete': observation field "
                                  "'mode' is Discrete; every field must be a Box")
    assert not (tmp_path / "x.hdf5").exists()


def test_an_observation_that_breaks_its_dict_space_names_the_field() -> None:
    from hardware.sim.layout import DictSpaceError
    from hardware.sim.registry import make_env

    env = make_env(f"{FIX}:make_dict")
    env.reset(seed=0)
    with pytest.raises(DictSpaceError, match="lacks the field 'object-state'"):
        env.observation({"robot0_eef_pos": np.zeros(3), "robot0_gripper_qpos": np.zeros(2)})
    with pytest.raises(DictSpaceError, match="'robot0_eef_pos' has 2 values; its space "
                       "declares 3"):
        env.observation({"robot0_eef_pos": np.zeros(2), "object-state": np.zeros(4),
                         "robot0_gripper_qpos": np.zeros(2)})
