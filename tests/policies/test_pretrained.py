"""The shipped checkpoint loads, is what its README says, and flies the default task."""

from __future__ import annotations

import pytest

from policies.checkpoint import load_policy, shipped
from policies.evaluate import evaluate

SHIPPED = shipped("hatch")


def test_shipped_checkpoint_is_a_hatch_sdli_policy() -> None:
    policy, meta = load_policy(SHIPPED)
    assert meta["task"] == "hatch" and meta["policy"]["kind"] == "sdp-sdli"
    assert sum(p.numel() for p in policy.parameters()) == 147_676
    assert float(policy.spiking.sdli.beta) == pytest.approx(policy.cfg.sdli_beta_max)  # ramped


def test_shipped_checkpoint_solves_held_out_hatch_episodes() -> None:
    policy, _ = load_policy(SHIPPED)
    res = evaluate(policy, "hatch", episodes=4, seed0=20_000, batch=4)
    assert res.successes >= 3, res
    assert all(0.02 < r < 0.5 for r in res.firing_rates), res.firing_rates
