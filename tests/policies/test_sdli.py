"""SDLI gate values against the documented formula; beta = 0 is the plain SDP."""

from __future__ import annotations

import math

import pytest
import torch

from policies.config import PolicyConfig
from policies.denoiser import SpikingDenoiser
from policies.sdli import SdliGate


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@pytest.mark.parametrize("invert", [False, True])
def test_gate_matches_formula(invert: bool) -> None:
    torch.manual_seed(0)
    gate = SdliGate(obs_dim=3, channels=5, micro_steps=4, sigma=0.9, beta_max=0.2,
                    invert=invert)
    obs = torch.randn(2, 3)
    g = gate.gates(obs).detach()
    assert g.shape == (4, 2, 5)
    w, b = gate.latency.weight.detach(), gate.latency.bias.detach()
    for i in range(2):
        for c in range(5):
            tau = 1 + (4 - 2) * _sigmoid(float(w[c] @ obs[i] + b[c]))
            assert 1 <= tau <= 3
            for t in range(4):
                z = (tau - t) if invert else (t - tau)
                expected = (1 - 0.2) + 0.2 * _sigmoid(z / 0.9)
                assert float(g[t, i, c]) == pytest.approx(expected, abs=1e-6)
    # normal: late micro-steps see more of the state; invert: early ones do
    later = g[-1] > g[0]
    assert bool(later.all()) != invert


def test_ramp_is_linear_and_capped() -> None:
    gate = SdliGate(obs_dim=2, channels=1, micro_steps=4, beta_max=0.2)
    gate.set_ramp(250, 1000)
    assert float(gate.beta) == pytest.approx(0.05)
    gate.set_ramp(5000, 1000)
    assert float(gate.beta) == pytest.approx(0.2)


def test_beta_zero_reduces_to_plain_sdp() -> None:
    cfg = PolicyConfig(kind="sdp-sdli", obs_dim=6, act_dim=2, chunk=2, hidden=(16, 16),
                       obs_hidden=8)
    torch.manual_seed(1)
    sdli = SpikingDenoiser(cfg)
    plain = SpikingDenoiser(PolicyConfig(**{**cfg.to_dict(), "kind": "sdp"}))
    plain.load_state_dict({k: v for k, v in sdli.state_dict().items()
                           if not k.startswith("sdli.")})
    x, obs = torch.randn(8, 4), torch.randn(8, 6)
    k = torch.arange(8) % 20
    sdli.sdli.beta.fill_(0.0)
    torch.testing.assert_close(sdli(x, k, obs), plain(x, k, obs), rtol=0, atol=0)
    sdli.sdli.beta.fill_(0.2)
    assert not torch.equal(sdli(x, k, obs), plain(x, k, obs))


def test_needs_two_micro_steps() -> None:
    with pytest.raises(ValueError, match="at least 2 micro-steps"):
        SdliGate(obs_dim=2, channels=1, micro_steps=1)
