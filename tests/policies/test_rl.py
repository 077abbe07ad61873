"""L-SDPPO fine-tuning runs end to end on a small env: an ordinary checkpoint comes out, a
stopped run resumes exactly as the uninterrupted one runs, and the rollouts of the
in-process and the multi-process vector env are the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from policies.bc import TrainConfig, train_bc
from policies.checkpoint import load_policy, load_weights
from policies.config import PolicyConfig
from policies.data import BcData
from policies.dppo import DppoConfig
from policies.evaluate import evaluate
from policies.rl import RlConfig, train_rl

TOY = "tests.fixtures.toy_env:PointReach"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spiking policy with SDLI cloned from 'move towards the origin' on PointReach."""
    g = torch.Generator().manual_seed(0)
    p = torch.rand(256, 2, generator=g) * 2 - 1
    obs = torch.cat([p, p.norm(dim=1, keepdim=True)], 1)
    act = (-p / p.norm(dim=1, keepdim=True).clamp(min=0.1)).clamp(-1, 1)
    data = BcData(obs=obs, actions=act.unsqueeze(1).repeat(1, 4, 1), episodes=4)
    cfg = PolicyConfig(kind="sdp-sdli", obs_dim=3, act_dim=2, hidden=(32, 24), obs_hidden=16,
                       emb_dim=8)
    run = tmp_path_factory.mktemp("toy") / "bc"
    train_bc(TOY, data, cfg, TrainConfig(iterations=150, batch_size=64, lr=3e-3, threads=1,
                                         rate_reg=0.0), run)
    return run


def _cfg(init: Path, iterations: int, **kw) -> RlConfig:
    return RlConfig(iterations=iterations, envs=3, asynchronous=False, epochs=2, minibatch=32,
                    critic_warmup=1, eval_every=0, init=str(init),
                    dppo=DppoConfig(ft_steps=5, clip_base=0.01, clip_top=0.05), **kw)


def test_fine_tuning_writes_an_ordinary_checkpoint(toy_run: Path, tmp_path: Path) -> None:
    cfg = _cfg(toy_run, 3)
    cfg.eval_every, cfg.eval_episodes = 3, 3
    history = train_rl(TOY, cfg, tmp_path / "rl")
    assert [h["iteration"] for h in history] == [1, 2, 3]
    assert all(h["env_steps"] > 0 and h["episodes"] == 3 for h in history)
    assert history[-1]["eval_success"] is not None and len(history[0]["firing_rates"]) == 2
    assert history[0]["update"]["pg_loss"] == 0.0  # critic warm-up
    # the default reward is 1 on the chunk that succeeds: returns count successes
    assert all(h["mean_return"] == h["successes"] / 3 for h in history)
    assert history[1]["update"]["approx_kl"] > 0.0
    policy, saved = load_policy(tmp_path / "rl")
    assert saved["task"] == TOY and saved["iteration"] == 3
    assert evaluate(policy, TOY, 2).episodes == 2  # eval takes it unchanged


def test_a_stopped_run_resumes_as_the_uninterrupted_one(toy_run: Path, tmp_path: Path) -> None:
    train_rl(TOY, _cfg(toy_run, 4), tmp_path / "straight")
    train_rl(TOY, _cfg(toy_run, 2), tmp_path / "stopped")
    resumed = train_rl(TOY, _cfg(toy_run, 4), tmp_path / "stopped")
    assert [h["iteration"] for h in resumed] == [1, 2, 3, 4]
    a, b = load_weights(tmp_path / "straight"), load_weights(tmp_path / "stopped")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_async_rollouts_equal_the_in_process_ones(toy_run: Path, tmp_path: Path) -> None:
    sync = train_rl(TOY, _cfg(toy_run, 1), tmp_path / "sync")
    cfg = _cfg(toy_run, 1)
    cfg.asynchronous = True
    multi = train_rl(TOY, cfg, tmp_path / "async")
    assert sync[0]["mean_return"] == multi[0]["mean_return"]
    assert sync[0]["env_steps"] == multi[0]["env_steps"]


def test_cli_fine_tunes_and_refuses_bad_input_in_one_line(toy_run: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "spikeflight")
    res = subprocess.run([exe, "train", "rl", "--init", str(toy_run), "-o", str(tmp_path / "rl"),
                          "--iterations", "1", "--envs", "2", "--sync", "--eval-every", "0",
                          "--std-floor", "0.03", "--minibatch", "64"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "it 1: success" in res.stderr and "done: 1 iterations" in res.stdout
    saved = load_policy(tmp_path / "rl")[1]
    assert saved["iteration"] == 1
    assert saved["train"]["rl"]["dppo"]["sigma_min"] == 0.03  # the exploration floor as asked
    assert saved["train"]["rl"]["dppo"]["sigma_lp_min"] == 0.1
    assert saved["train"]["rl"]["minibatch"] == 64
    res = subprocess.run([exe, "train", "rl", "--init", str(toy_run), "-o", str(tmp_path / "x"),
                          "--ft-steps", "50"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error: --ft-steps 50: the policy has")
    assert not (tmp_path / "x").exists()
    res = subprocess.run([exe, "train", "rl", "--init", str(toy_run), "-o", str(tmp_path / "y"),
                          "--task", "hatch", "--sync", "--envs", "1"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "error: the policy takes 3 observation values, task " \
        "'hatch' gives" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "y").exists()


def test_the_energy_penalty_lowers_firing_rates(toy_run: Path, tmp_path: Path) -> None:
    def rates(coef: float, name: str) -> float:
        cfg = _cfg(toy_run, 4)
        cfg.dppo = DppoConfig(ft_steps=5, clip_base=0.01, clip_top=0.05, energy_coef=coef)
        cfg.actor_lr = 3e-3
        history = train_rl(TOY, cfg, tmp_path / name)
        return sum(history[-1]["firing_rates"])
    low, high = rates(5.0, "energy"), rates(0.0, "plain")
    assert low < 0.9 * high


def test_tune_readout_moves_only_the_graded_output_maps(toy_run: Path, tmp_path: Path) -> None:
    from policies.rl import READOUT

    cfg = _cfg(toy_run, 3, tune="readout")
    cfg.actor_lr = 1e-2
    train_rl(TOY, cfg, tmp_path / "rl")
    before, after = load_weights(toy_run), load_weights(tmp_path / "rl")
    # the SDLI gate's strength (a buffer) is set to full by every fine-tuning
    moved = {k for k in before if not torch.equal(before[k], after[k])} - {"denoiser.sdli.beta"}
    assert moved and all(k.split("denoiser.", 1)[-1].startswith(READOUT) for k in moved), moved
    assert load_policy(tmp_path / "rl")[1]["train"]["rl"]["tune"] == "readout"
    with pytest.raises(ValueError, match="tune must be one of all, readout"):
        train_rl(TOY, _cfg(toy_run, 1, tune="spikes"), tmp_path / "bad")


def test_gradient_probe_agrees_with_itself_and_not_across_rollouts(toy_run: Path,
                                                                   tmp_path: Path) -> None:
    """The same rollout gives the same estimate (cosine 1); independent rollouts of a
    noisy toy policy give estimates that agree less; the halves are compared as sums."""
    from policies.rl import Trainer, make_vector_env
    from policies.rl_probe import gradient_agreement, gradient_estimate

    cfg = _cfg(toy_run, 1)
    trainer = Trainer(TOY, cfg, tmp_path / "t")
    venv = make_vector_env(TOY, cfg.envs, trainer.policy.cfg.chunk, False)
    try:
        (a, wins), (b, _) = (gradient_estimate(trainer, venv, 0) for _ in range(2))
    finally:
        venv.close()
    assert torch.equal(a, b) and a.abs().sum() > 0 and 0 <= wins <= cfg.envs
    res = gradient_agreement(TOY, cfg, 4, tmp_path / "p")
    assert len(res.cosines) == 6 and all(-1 <= c < 0.999 for c in res.cosines)
    assert res.halves_cosine is not None and -1 <= res.halves_cosine <= 1
    assert all(0 <= s <= 1 for s in res.sign_agreement)
    with pytest.raises(ValueError, match="at least 2"):
        gradient_agreement(TOY, cfg, 1, tmp_path / "q")


def test_cli_gradient_probe_reports_json_and_refuses_bad_input(toy_run: Path) -> None:
    import json
    import subprocess
    import sys

    from typer.testing import CliRunner

    from tools.cli import app

    args = ["bench", "rl-gradient", "--init", str(toy_run), "--envs", "3", "--rollouts", "4",
            "--ft-steps", "5"]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["pairwise_cosines"]) == 6 and len(out["successes"]) == 4
    assert -1 <= out["halves_cosine"] <= 1
    exe = str(Path(sys.executable).parent / "spikeflight")
    for bad, why in ((["--tune", "spikes"], "error: --tune must be one of all, readout"),
                     (["--ft-steps", "99"], "error: --ft-steps 99: the policy has 20"),
                     (["--task", "hatch"], "error: the policy takes 3 observation values")):
        res = subprocess.run([exe, *args, *bad], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and res.stderr.startswith(why), res.stderr
        assert res.stderr.strip().count("\n") == 0
