"""The teacher world model: transitions, learning a known system, exact resume, open-loop
error, the commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hardware.sim.dataset import read_episodes
from policies.world_model import WorldModelConfig, load_transitions
from policies.world_model_eval import kstep_errors
from policies.world_model_train import (
    WEIGHTS,
    WorldModelTrainConfig,
    load_world_model,
    train_world_model,
)
from tests.fixtures.inproc import cli_inproc
from tests.tools.test_data_cli import TOY, TOY_EXPERT, assert_one_line_error, cli

TINY = WorldModelConfig(obs_dim=3, act_dim=2, members=3, hidden=[64, 64])


@pytest.fixture(scope="module")
def toy_demos(tmp_path_factory) -> dict[str, Path]:
    """Noisy expert episodes of the point-reaching toy (p' = p + 0.1 clip(a)): train, test."""
    root = tmp_path_factory.mktemp("wm-demos")
    out = {}
    for name, seed, n in (("train", 0, 40), ("test", 9000, 8)):
        out[name] = root / f"{name}.hdf5"
        res = cli("data", "collect", "--task", TOY, "--expert", TOY_EXPERT, "--episodes",
                  str(n), "--seed", str(seed), "--noise", "0.5", "-o", str(out[name]))
        assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def trained(toy_demos, tmp_path_factory):
    data = load_transitions([str(toy_demos["train"])], 3, 2)
    run = tmp_path_factory.mktemp("wm") / "run"
    model, losses = train_world_model("toy", data, TINY, WorldModelTrainConfig(
        iterations=600, batch_size=128, threads=1, checkpoint_every=300), run)
    return model, losses, run


def test_transitions_are_every_step_with_the_executed_action(toy_demos) -> None:
    eps = read_episodes(toy_demos["train"])
    data = load_transitions([str(toy_demos["train"])], 3, 2)
    assert len(data) == sum(ep.length for ep in eps) and data.episodes == len(eps)
    assert int((data.valid == 0).sum()) == len(eps)  # each episode's last step: no next obs
    first = eps[0]
    np.testing.assert_allclose(data.act[:first.length].numpy(), first.executed_actions,
                               rtol=1e-6)
    np.testing.assert_allclose(data.next_obs[0].numpy(), data.obs[1].numpy())
    assert float(data.done.sum()) == sum(ep.success for ep in eps)


def test_the_model_learns_the_toy_dynamics_and_knows_where_it_has_not_been(
        trained, toy_demos) -> None:
    model, losses, _ = trained
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) - 1.0
    err = kstep_errors(model, read_episodes(toy_demos["test"]), horizon=10, stride=5)
    assert err["model"][0] < 0.3 * err["no_change"][0]
    assert err["model"][9] < 0.3 * err["no_change"][9]  # open loop, 10 steps
    inside = torch.tensor([[0.3, -0.2, 0.36]])
    far = torch.tensor([[8.0, -9.0, 12.0]])
    act = torch.tensor([[0.5, 0.5]])
    nxt, _, _, u_in = model.step(inside, act)
    _, _, _, u_far = model.step(far, act)
    np.testing.assert_allclose(nxt[0, :2].numpy(), [0.35, -0.15], atol=0.03)
    assert float(u_far) > 5 * float(u_in)


def test_a_resumed_run_ends_with_the_uninterrupted_weights(toy_demos, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    data = load_transitions([str(toy_demos["train"])], 3, 2)
    cfg = dict(batch_size=32, threads=1, checkpoint_every=10)
    train_world_model("toy", data, TINY, WorldModelTrainConfig(iterations=20, **cfg),
                      tmp_path / "a")
    train_world_model("toy", data, TINY, WorldModelTrainConfig(iterations=10, **cfg),
                      tmp_path / "b")
    train_world_model("toy", data, TINY, WorldModelTrainConfig(iterations=20, **cfg),
                      tmp_path / "b")
    a, b = load_file(tmp_path / "a" / WEIGHTS), load_file(tmp_path / "b" / WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_checkpoint_reloads_as_trained(trained) -> None:
    model, _, run = trained
    again, cfg = load_world_model(run)
    assert cfg["task"] == "toy" and cfg["iteration"] == 600
    x, a = torch.randn(4, 3), torch.randn(4, 2)
    assert torch.equal(model.step(x, a)[0], again.step(x, a)[0])


def test_commands_train_and_evaluate(toy_demos, tmp_path: Path) -> None:
    run, png = tmp_path / "run", tmp_path / "k.png"
    res = cli("train", "world-model", "--task", TOY, "-d", str(toy_demos["train"]), "-o",
              str(run), "-n", "40", "--members", "2", "--hidden", "32", "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert "train world model" in res.stderr and (run / WEIGHTS).exists()
    res = cli("world-model", "eval", str(run), "-d", str(toy_demos["test"]), "--horizon",
              "70", "--json", "--plot", str(png))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["k"] == list(range(1, 71)) and out["task"] == TOY
    assert out["model"][0] > 0 and out["model"][-1] is None  # no episode has 70 steps left
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "words"), [
    (["--lr", "nan"], ["--lr", "not a finite number"]),
    (["--lr", "-1"], ["--lr must be a positive number"]),
    (["--task", "hatch"], ["3 observation and 2 action values", "the task expects 38 and 7"]),
    (["--hidden", "0"], ["--hidden widths must be positive"]),
])
def test_bad_training_input_is_one_line_and_writes_nothing(toy_demos, tmp_path: Path,
                                                           args: list, words: list) -> None:
    res = cli_inproc("train", "world-model", "--task", TOY, "-d", str(toy_demos["train"]),
                     "-o", str(tmp_path / "run"), "-n", "5", *args)
    assert_one_line_error(res, *words)
    assert not (tmp_path / "run").exists()


def test_windows_hold_h_steps_ahead_and_success_within_them(toy_demos) -> None:
    from policies.world_model_distill import load_windows

    eps = read_episodes(toy_demos["train"])
    w = load_windows([str(toy_demos["train"])], 3, 2, horizon=4)
    ep = eps[0]
    obs = np.concatenate([v.reshape(ep.length, -1) for v in ep.obs.values()], axis=1)
    np.testing.assert_allclose(w.target[0].numpy(), obs[4], rtol=1e-6)
    np.testing.assert_allclose(w.actions[0].numpy(), ep.executed_actions[:4], rtol=1e-6)
    n = ep.length
    assert w.real[:n].tolist() == [1.0] * (n - 4) + [0.0] * 4
    if ep.success:
        assert w.done[:n].tolist() == [0.0] * (n - 4) + [1.0] * 4


def test_the_student_distils_the_teacher_and_predicts_h_steps_at_once(
        trained, toy_demos, tmp_path: Path) -> None:
    from policies.world_model_distill import DistillConfig, distill, load_student, load_windows
    from policies.world_model_student import StudentConfig

    teacher, _, run = trained
    w = load_windows([str(toy_demos["train"])], 3, 2, horizon=4)
    cfg = StudentConfig(3, 2, horizon=4, hidden=[32, 32])
    student, losses = distill("toy", teacher, str(run), w, cfg,
                              DistillConfig(iterations=600, threads=1, batch_size=128),
                              tmp_path / "student")
    assert student.parameters_count() == 11 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4
    err = kstep_errors(student, read_episodes(toy_demos["test"]), horizon=12, stride=5)
    assert np.isnan(err["model"][0]) and np.isnan(err["model"][2])  # only every 4 steps
    assert err["model"][3] < 0.3 * err["no_change"][3]
    assert err["model"][11] < 0.3 * err["no_change"][11]
    again, meta = load_student(tmp_path / "student")
    assert meta["teacher"] == str(run) and meta["iteration"] == 600
    x, a = torch.randn(5, 3), torch.randn(5, 4, 2)
    with torch.no_grad():
        assert torch.equal(student(x, a)[0], again(x, a)[0])
        p = again(torch.tensor([[0.02, 0.01, 0.022]]), torch.zeros(1, 4, 2))[1]
        q = again(torch.tensor([[0.9, -0.9, 1.27]]), torch.zeros(1, 4, 2))[1]
    assert float(p) > float(q)  # at the goal success is likelier than far from it


def test_distill_command_and_student_eval(trained, toy_demos, tmp_path: Path) -> None:
    _, _, run = trained
    out = tmp_path / "student"
    res = cli("train", "distill", "--teacher", str(run), "-d", str(toy_demos["train"]),
              "-o", str(out), "-n", "30", "--hidden", "16", "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert "MACs per prediction" in res.stdout
    res = cli("world-model", "eval", str(out), "-d", str(toy_demos["test"]), "--horizon", "8",
              "--json")
    assert res.returncode == 0, res.stderr
    model = json.loads(res.stdout)["model"]
    assert model[3] is not None and model[7] is not None and model[0] is None
    png = tmp_path / "both.png"
    res = cli("world-model", "eval", str(run), str(out), "-d", str(toy_demos["test"]),
              "--horizon", "8", "--json", "--plot", str(png))
    both = json.loads(res.stdout)["runs"]
    assert [r["kind"] for r in both] == ["EnsembleWorldModel", "StudentWorldModel"]
    assert [r["horizon_steps"] for r in both] == [1, 4] and png.stat().st_size > 10_000
    res = cli("world-model", "eval", str(toy_demos["test"]), "-d", str(toy_demos["test"]))
    assert_one_line_error(res, "not a spikeflight checkpoint")
