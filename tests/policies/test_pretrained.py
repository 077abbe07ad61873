"""The shipped checkpoints load, are what their README says, and fly their tasks."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim.registry import TASKS, make_env
from policies.checkpoint import CheckpointError, load_policy, shipped
from policies.evaluate import evaluate


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_ships_an_sdli_policy_for_its_observations(task: str) -> None:
    policy, meta = load_policy(shipped(task))
    env = make_env(task)
    obs, _ = env.reset(seed=20_000)
    assert meta["task"] == task and meta["policy"]["kind"] == "sdp-sdli"
    assert policy.cfg.obs_dim == obs.shape[0] and policy.cfg.act_dim == env.action_space.shape[0]
    assert float(policy.spiking.sdli.beta) == pytest.approx(policy.cfg.sdli_beta_max)  # ramped
    plan = policy.act(obs[None])
    assert plan.shape == (1, policy.cfg.chunk, 7) and np.all(np.abs(plan) <= 1.0)
    env.close()


def test_the_default_size_is_what_the_readme_says() -> None:
    policy, _ = load_policy(shipped("hatch"))
    assert sum(p.numel() for p in policy.parameters()) == 147_676


def test_an_unknown_task_names_the_shipped_ones() -> None:
    with pytest.raises(CheckpointError, match="no shipped checkpoint for task 'nope'; "
                                              "shipped: cap, drawer, hatch, panel, stow"):
        shipped("nope")


@pytest.mark.parametrize("task", ["hatch", "cap"])
def test_shipped_checkpoint_solves_held_out_episodes(task: str) -> None:
    policy, _ = load_policy(shipped(task))
    res = evaluate(policy, task, episodes=4, seed0=20_000, batch=4)
    assert res.successes >= 3, res
    assert all(0.02 < r < 0.5 for r in res.firing_rates), res.firing_rates
