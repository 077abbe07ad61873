"""Policies whose chunks are in the gripper's frame: the trainer turns the targets, the
policy and the compiled image hand world-frame actions to the robot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hardware.sim.action_frame import ActionFrame
from hardware.sim.registry import make_env
from hardware.sim.tasks.hatch import HatchEnv
from policies.config import PolicyConfig
from policies.data import load_bc_data
from policies.policy import DiffusionPolicy
from runtime.sampler import unnormalise
from tests.fixtures.inproc import cli_inproc
from tests.tools.test_data_cli import assert_one_line_error, cli

HATCH_OBS = HatchEnv.obs_layout()[-1].slice.stop
GRIPPER = ActionFrame.for_layout("gripper", HatchEnv.obs_layout())


def _hatch_obs(n: int = 3) -> np.ndarray:
    env, out = make_env("hatch"), []
    rng = np.random.default_rng(0)
    for seed in range(n):
        o, _ = env.reset(seed=seed)
        for _ in range(4):
            o, *_ = env.step(rng.uniform(-1, 1, 7))
        out.append(o)
    return np.stack(out)


def test_training_windows_are_turned_by_their_first_observation(hatch_demos: Path) -> None:
    data = load_bc_data(hatch_demos, chunk=4, obs_dim=HATCH_OBS, act_dim=7)
    turned = data.in_frame(GRIPPER)
    want = GRIPPER.from_world(data.obs.numpy(), data.actions.numpy())
    np.testing.assert_allclose(turned.actions.numpy(), want, atol=1e-6)
    assert not torch.allclose(turned.actions, data.actions)
    assert data.in_frame(ActionFrame()) is data


def test_a_gripper_frame_policy_acts_in_the_world_frame() -> None:
    """The same network read as a gripper-frame policy returns its world-frame twin's
    chunk turned by the gripper's attitude at the observation."""
    small = {"kind": "ann", "obs_dim": HATCH_OBS, "act_dim": 7, "hidden": (16, 16),
             "obs_hidden": 8, "emb_dim": 8}
    world = DiffusionPolicy(PolicyConfig(**small)).eval()
    grip = DiffusionPolicy(PolicyConfig(**small, action_frame="gripper",
                                        frame_rot6=GRIPPER.rot6)).eval()
    grip.load_state_dict(world.state_dict())
    obs = _hatch_obs()
    a_w = world.act(obs, generator=torch.Generator().manual_seed(3), ddim_steps=3)
    a_g = grip.act(obs, generator=torch.Generator().manual_seed(3), ddim_steps=3)
    np.testing.assert_allclose(a_g, GRIPPER.to_world(obs, a_w), atol=1e-6)
    assert not np.allclose(a_g[..., :6], a_w[..., :6])


def test_a_frame_index_outside_the_observation_is_refused() -> None:
    with pytest.raises(ValueError, match="frame_rot6 must index 6 observation values"):
        PolicyConfig(kind="ann", obs_dim=8, act_dim=7, action_frame="gripper", frame_rot6=4)


def test_cli_trains_in_the_gripper_frame_and_the_image_flies_world_actions(
        hatch_demos: Path, tmp_path: Path) -> None:
    run, key, image = tmp_path / "run", tmp_path / "k", tmp_path / "g.sfimg"
    res = cli("train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "--policy", "sdp",
              "-o", str(run), "--iterations", "20", "--hidden", "16,16", "--threads", "1",
              "--prediction", "sample", "--action-frame", "gripper")
    assert res.returncode == 0, res.stderr
    policy_cfg = json.loads((run / "config.json").read_text())["policy"]
    assert (policy_cfg["action_frame"], policy_cfg["frame_rot6"]) == ("gripper", GRIPPER.rot6)
    assert cli("keys", "generate", "-o", str(key)).returncode == 0
    res = cli("compile", str(run), "--target", "cpu-fixed", "--key", str(key), "-o", str(image),
              "--operating-points", "ddpm", "--ground-episodes", "1")
    assert res.returncode == 0, res.stderr
    from runtime.loader import load_flight_policy

    flight = load_flight_policy(image, key.with_name(key.name + ".pub"))
    assert flight.frame == GRIPPER
    obs = _hatch_obs()
    x0 = np.random.default_rng(4).uniform(-1, 1, (len(obs), flight.net.action_size))
    raw = unnormalise(x0, flight.act_lo, flight.act_hi, flight.chunk)
    np.testing.assert_allclose(flight.chunk_actions(obs, x0), GRIPPER.to_world(obs, raw))


def test_cli_refuses_an_unknown_frame_and_writes_nothing(hatch_demos: Path,
                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = cli_inproc("train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "-o",
                     str(run), "--action-frame", "payload")
    assert_one_line_error(res, "action frame must be one of world, gripper, got 'payload'")
    assert not run.exists()
