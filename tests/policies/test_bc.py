"""Behaviour cloning: learning, exact resume, checkpoint round trip, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hardware.sim.experts.hatch import HatchExpert
from hardware.sim.monitor import CATEGORIES
from hardware.sim.tasks.hatch import HatchEnv
from policies.bc import TrainConfig, TrainingError, learning_rate, train_bc
from policies.checkpoint import CheckpointError, load_policy
from policies.config import PolicyConfig
from policies.data import BcData, load_bc_data
from policies.normalize import MinMax
from tests.fixtures.inproc import cli_inproc
from tests.tools.test_data_cli import assert_one_line_error, cli

TINY = {"hidden": (32, 32), "obs_hidden": 16, "emb_dim": 8}
HATCH_OBS = HatchEnv.obs_layout()[-1].slice.stop


def _data(n: int = 64, obs_dim: int = 5, act_dim: int = 2) -> BcData:
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(n, obs_dim, generator=g) * 2 - 1
    # a learnable map: the action chunk is a fixed function of the observation
    act = torch.tanh(obs[:, :act_dim]).unsqueeze(1).repeat(1, 4, 1)
    return BcData(obs=obs, actions=act, episodes=4)


@pytest.mark.parametrize("kind", ["sdp", "sdp-sdli", "ann"])
def test_short_training_lowers_the_loss(tmp_path: Path, kind: str) -> None:
    cfg = PolicyConfig(kind=kind, obs_dim=5, act_dim=2, **TINY)
    res = train_bc("hatch", _data(), cfg, TrainConfig(iterations=300, batch_size=64,
                                                      lr=2e-3, threads=1), tmp_path / kind)
    first, last = np.mean(res.losses[:30]), np.mean(res.losses[-30:])
    assert last < 0.7 * first, (first, last)


def test_a_diverging_run_stops_in_one_line_and_keeps_its_last_checkpoint(tmp_path: Path) -> None:
    """A learning rate that blows the weights up stops training with a one-line error and
    writes no checkpoint of the broken weights; a run diverging from its first steps
    leaves nothing at all."""
    cfg = PolicyConfig(kind="ann", obs_dim=5, act_dim=2, **TINY)
    with pytest.raises(TrainingError, match="training diverged at iteration .*lower --lr"
                       ".*no checkpoint was written"):
        train_bc("hatch", _data(), cfg, TrainConfig(iterations=50, batch_size=64, lr=1e30,
                                                    threads=1), tmp_path / "bad")
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    run = tmp_path / "run"
    train_bc("hatch", _data(), cfg, TrainConfig(iterations=20, batch_size=64, lr=1e-3,
                                                threads=1, checkpoint_every=10), run)
    before = _digest(run)
    with pytest.raises(TrainingError, match="the checkpoint of iteration 20 .* is kept"):
        train_bc("hatch", _data(), cfg, TrainConfig(iterations=60, batch_size=64, lr=1e30,
                                                    threads=1, checkpoint_every=10), run)
    assert _digest(run) == before


def _digest(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir())
            if p.suffix == ".safetensors"}


def _phased(n: int = 64) -> BcData:
    data = _data(n)
    data.phases = torch.tensor([0] * (n - 8) + [1] * 4 + [2] * 4)  # two short phases
    return data


@pytest.mark.parametrize("extra", [{}, {"lr_schedule": "cosine", "warmup": 4,
                                        "phase_balance": 1.0}])
def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path, extra: dict) -> None:
    cfg = PolicyConfig(kind="sdp-sdli", obs_dim=5, act_dim=2, **TINY)
    tc = {"batch_size": 16, "threads": 1, "checkpoint_every": 5, "seed": 3, **extra}
    data = _phased()
    straight = train_bc("hatch", data, cfg, TrainConfig(iterations=12, **tc), tmp_path / "a")
    def kill(i: int, loss: float) -> None:
        if i == 7:  # two steps after the checkpoint at 5
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_bc("hatch", data, cfg, TrainConfig(iterations=12, **tc), tmp_path / "b",
                 on_step=kill)
    resumed = train_bc("hatch", data, cfg, TrainConfig(iterations=12, **tc), tmp_path / "b")
    assert resumed.resumed_from == 5
    assert resumed.losses == straight.losses  # the same next steps, bit for bit
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    cfg = TrainConfig(iterations=1000, lr=1e-3, lr_schedule="cosine", warmup=100)
    lrs = [learning_rate(cfg, i) for i in range(1000)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[99] == pytest.approx(1e-3, rel=0.03)
    assert max(lrs) <= 1e-3 and lrs[-1] < 1e-7
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False))  # decays
    assert learning_rate(TrainConfig(lr=2e-4), 12345) == 2e-4  # constant stays constant
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        learning_rate(TrainConfig(lr_schedule="step"), 0)


def test_phase_balance_gives_every_phase_its_share() -> None:
    data = _phased()
    assert data.sample_weights(0.0) is None
    full = data.sample_weights(1.0)
    mass = [float(full[data.phases == p].sum()) for p in range(3)]
    assert mass == pytest.approx([1 / 3] * 3)  # 56 : 4 : 4 samples, equal shares
    half = data.sample_weights(0.5)
    assert float(half[data.phases == 1].sum()) == pytest.approx(2 / (56 ** 0.5 + 4), rel=1e-6)
    assert _data().sample_weights(1.0) is None  # no phases recorded: uniform


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg = PolicyConfig(kind="sdp-sdli", obs_dim=5, act_dim=2, **TINY)
    train_bc("cap", _data(), cfg, TrainConfig(iterations=4, batch_size=8, threads=1),
             tmp_path / "r")
    policy, meta = load_policy(tmp_path / "r" / "policy.safetensors")
    again, _ = load_policy(tmp_path / "r")
    assert meta["task"] == "cap" and meta["policy"]["kind"] == "sdp-sdli"
    assert len(meta["schedule"]["alpha_bars"]) == 20
    robust = MinMax.fit_robust(_data().obs)
    assert meta["normalizers"]["obs"]["lo"] == pytest.approx(robust.lo.tolist())
    obs = _data().obs[:3].numpy()
    a = policy.act(obs, generator=torch.Generator().manual_seed(7))
    b = again.act(obs, generator=torch.Generator().manual_seed(7))
    assert a.shape == (3, 4, 2) and np.array_equal(a, b)


def test_a_changed_weight_byte_is_caught_by_the_checksum(tmp_path: Path) -> None:
    cfg = PolicyConfig(kind="sdp", obs_dim=5, act_dim=2, **TINY)
    train_bc("cap", _data(), cfg, TrainConfig(iterations=2, batch_size=8, threads=1),
             tmp_path / "r")
    path = tmp_path / "r" / "policy.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor's bytes: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights do not match their checksum"):
        load_policy(tmp_path / "r")


def test_resume_as_other_policy_type_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "r"
    cfg = PolicyConfig(kind="sdp", obs_dim=5, act_dim=2, **TINY)
    train_bc("hatch", _data(), cfg, TrainConfig(iterations=3, batch_size=8, threads=1), run)
    before = _digest(run)
    ann = PolicyConfig(kind="ann", obs_dim=5, act_dim=2, **TINY)
    msg = "holds a 'sdp' checkpoint; cannot resume it as 'ann'"
    with pytest.raises(CheckpointError, match=msg):
        train_bc("hatch", _data(), ann, TrainConfig(iterations=6, batch_size=8, threads=1), run)
    assert _digest(run) == before


def test_cli_train_then_eval_json(hatch_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = cli("train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "--policy", "sdp",
              "-o", str(run), "--iterations", "20", "--hidden", "16,16", "--threads", "1")
    assert res.returncode == 0, res.stderr
    ev = cli("eval", str(run), "--episodes", "2", "--ddim-steps", "3", "--json")
    assert ev.returncode == 0, ev.stderr
    rep = json.loads(ev.stdout)
    assert rep["task"] == "hatch" and rep["episodes"] == 2  # task taken from the checkpoint
    assert rep["denoising_steps"] == 3
    assert len(rep["firing_rates"]) == 2 and all(0 <= r <= 1 for r in rep["firing_rates"])
    lo, hi = rep["success_ci95"]
    assert 0 <= lo <= rep["success_rate"] <= hi <= 1
    assert rep["energy_ratio_vs_ann"] > 0


def test_cli_demos_of_other_obs_size(tmp_path: Path) -> None:
    toy = tmp_path / "toy.hdf5"
    assert cli("data", "collect", "--task", "tests.fixtures.toy_env:make_toy", "--expert",
               "tests.fixtures.toy_env:ToyExpert", "-n", "3", "-o", str(toy)).returncode == 0
    run = tmp_path / "run"
    res = cli_inproc("train", "bc", "--task", "hatch", "--demos", str(toy), "-o", str(run))
    assert_one_line_error(res, str(toy), "observations have 3 values per step, "
                         f"the task expects {HATCH_OBS}")
    assert not run.exists()


def test_cli_nan_in_demos(hatch_demos: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nan.hdf5"
    bad.write_bytes(hatch_demos.read_bytes())
    with h5py.File(bad, "a") as fh:
        fh["data/demo_1/actions"][5, 2] = np.nan
    run = tmp_path / "run"
    res = cli_inproc("train", "bc", "--task", "hatch", "--demos", str(bad), "-o", str(run))
    assert_one_line_error(res, "non-finite value", "actions", "episode 1", "step 5")
    assert not run.exists()


def test_cli_phases_of_other_length_in_demos(hatch_demos: Path, tmp_path: Path) -> None:
    bad = tmp_path / "phases.hdf5"
    bad.write_bytes(hatch_demos.read_bytes())
    with h5py.File(bad, "a") as fh:
        phases = fh["data/demo_2/phases"][()]
        del fh["data/demo_2/phases"]
        fh["data/demo_2/phases"] = phases[:-3]
    run = tmp_path / "run"
    res = cli_inproc("train", "bc", "--task", "hatch", "--demos", str(bad), "-o", str(run))
    assert_one_line_error(res, "data/demo_2/phases has", "steps, actions has")
    assert not run.exists()


def test_cli_wrong_policy_type_for_existing_run(hatch_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "--policy", "ann",
               "-o", str(run), "--iterations", "2", "--hidden", "8,8").returncode == 0
    before = _digest(run)
    res = cli_inproc("train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "--policy",
                     "sdp", "-o", str(run), "--iterations", "4")
    assert_one_line_error(res, "holds a 'ann' checkpoint")
    assert _digest(run) == before
    ev = cli_inproc("eval", str(tmp_path), "--episodes", "1")
    assert_one_line_error(ev, "not a spikeflight checkpoint")


def test_load_bc_data_windows_and_pads(hatch_demos: Path) -> None:
    data = load_bc_data(hatch_demos, chunk=4, obs_dim=HATCH_OBS, act_dim=7)
    from hardware.sim.experts.hatch import HatchExpert

    with h5py.File(hatch_demos) as fh:
        acts = fh["data/demo_0/actions"][()]
        names = json.loads(fh["data"].attrs["env_args"])["expert_phases"]
    assert names == list(HatchExpert.PHASES)
    n = len(acts)
    torch.testing.assert_close(data.actions[0], torch.as_tensor(acts[:4], dtype=torch.float32))
    assert data.phases[0] == 0 and data.phases.max() > 0  # the expert's phases were recorded
    last = data.actions[n - 1]  # last step: the final action repeated
    assert torch.equal(last, last[:1].expand(4, -1))


def test_evaluate_replans_after_execute_actions(tmp_path: Path) -> None:
    from policies.evaluate import evaluate

    cfg = PolicyConfig(kind="ann", obs_dim=HATCH_OBS, act_dim=7, **TINY)
    train_bc("hatch", _data(obs_dim=HATCH_OBS, act_dim=7), cfg,
             TrainConfig(iterations=2, batch_size=8, threads=1), tmp_path / "r")
    policy, _ = load_policy(tmp_path / "r")
    one = evaluate(policy, "hatch", episodes=1, ddim_steps=2, execute=1)
    assert one.chunks == sum(one.lengths)  # a new chunk before every step
    full = evaluate(policy, "hatch", episodes=1, ddim_steps=2)
    assert full.chunks == -(-sum(full.lengths) // 4)  # whole chunks of 4
    with pytest.raises(ValueError, match="execute must be in 1..4"):
        evaluate(policy, "hatch", episodes=1, execute=5)


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--ddim-steps", "50", "--ddim-steps must be in 1..20"),
    ("--execute", "9", "--execute must be at most the chunk size 4"),
])
def test_cli_eval_bad_options(flag: str, value: str, needle: str) -> None:
    from policies.checkpoint import shipped

    assert_one_line_error(cli_inproc("eval", str(shipped("hatch")), "-n", "1", flag, value),
                          needle)


def test_failed_episodes_are_categorised_and_taken_over(tmp_path: Path) -> None:
    """An untrained policy fails every episode: each failure gets one category, and with
    ``takeover`` the expert takes each of them over from one of its chunks."""
    from policies.evaluate import evaluate

    cfg = PolicyConfig(kind="ann", obs_dim=HATCH_OBS, act_dim=7, **TINY)
    train_bc("hatch", _data(obs_dim=HATCH_OBS, act_dim=7), cfg,
             TrainConfig(iterations=2, batch_size=8, threads=1), tmp_path / "r")
    policy, _ = load_policy(tmp_path / "r")
    res = evaluate(policy, "hatch", episodes=2, ddim_steps=2, takeover=True)
    assert res.successes == 0
    assert sum(res.failures.values()) == 2 and set(res.failures) == set(CATEGORIES)
    assert sum(res.furthest.values()) == 2
    assert list(res.furthest) == list(HatchExpert.PHASES)  # in task order
    assert res.takeover_episodes == 2 and 0 <= res.takeover_successes <= 2


def test_the_expert_taking_over_at_the_start_succeeds() -> None:
    from hardware.sim.registry import make_env
    from policies.evaluate import expert_takes_over

    env = make_env("stow")
    env.reset(seed=10_000)
    state = env.unwrapped.get_state()
    env.reset(seed=10_001)  # elsewhere, so the snapshot must put everything back
    assert expert_takes_over(env, state)


def test_takeover_needs_a_scripted_expert(tmp_path: Path) -> None:
    from policies.evaluate import EvalError, evaluate

    cfg = PolicyConfig(kind="ann", obs_dim=3, act_dim=2, **TINY)
    train_bc("toy", _data(obs_dim=3, act_dim=2), cfg,
             TrainConfig(iterations=2, batch_size=8, threads=1), tmp_path / "r")
    policy, _ = load_policy(tmp_path / "r")
    with pytest.raises(EvalError, match="--takeover needs a scripted expert: the task must be "
                                        "one of hatch, .*, got 'tests.fixtures.toy_env"):
        evaluate(policy, "tests.fixtures.toy_env:make_toy", episodes=1, takeover=True)


def test_cli_trains_on_two_ranks_and_resumes_on_one(hatch_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["train", "bc", "--task", "hatch", "--demos", str(hatch_demos), "--policy", "sdp",
              "--hidden", "32,24", "--batch-size", "16", "--threads", "1",
              "--checkpoint-every", "10", "-o", str(run)]
    res = cli(*common, "--iterations", "20", "--nproc", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 rank(s)" in res.stdout and json.loads((run / "config.json").read_text())[
        "iteration"] == 20
    res = cli(*common, "--iterations", "30")
    assert res.returncode == 0 and "resumed from iteration 20" in res.stdout, res.stdout
    assert load_policy(run)[1]["iteration"] == 30


def test_evaluation_gives_the_same_result_for_any_worker_count(tmp_path: Path) -> None:
    from policies.evaluate import evaluate_checkpoint

    toy = "tests.fixtures.toy_env:make_toy"
    cfg = PolicyConfig(kind="sdp", obs_dim=3, act_dim=2, **TINY)
    train_bc(toy, _data(obs_dim=3, act_dim=2), cfg,
             TrainConfig(iterations=3, batch_size=8, threads=1), tmp_path / "r")
    policy, _ = load_policy(tmp_path / "r")
    runs = [evaluate_checkpoint(str(tmp_path / "r"), policy, toy, 7, workers, batch=3,
                                ddim_steps=3) for workers in (1, 2)]
    one, two = runs
    assert one.lengths == two.lengths and one.successes == two.successes
    assert one.chunks == two.chunks and one.spike_samples == two.spike_samples > 0
    np.testing.assert_allclose(one.firing_rates, two.firing_rates, rtol=1e-12)
    res = cli("eval", str(tmp_path / "r"), "-n", "7", "--workers", "1", "--batch", "3",
              "--ddim-steps", "3", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mean_episode_length"] == sum(one.lengths) / 7


def test_merged_results_add_failure_counts_in_task_order() -> None:
    from policies.evaluate import EvalResult

    def part(failures: dict[str, int], furthest: dict[str, int]) -> EvalResult:
        return EvalResult(task="drawer", episodes=3, successes=0, lengths=[1, 2, 3], chunks=3,
                          failures=failures, furthest=furthest)

    both = part({"missed catch": 2, "timeout": 1}, {"pull": 1, "carry": 2}).merge(
        part({"missed catch": 1, "timeout": 2}, {"pull": 2, "carry": 0, "push": 1}))
    assert both.failures == {"missed catch": 3, "timeout": 3}
    assert list(both.furthest.items()) == [("pull", 3), ("carry", 2), ("push", 1)]
