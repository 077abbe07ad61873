"""DPPO's pieces against their formulas: the per-step clip schedule, the denoising
discount, the inner MDP's Gaussian log-probabilities, GAE, reward scaling, the clipped
surrogate; and a short fine-tuning run on an easy one-step task raises its return."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.distributions import Normal

from policies.dppo import (
    Critic,
    DppoConfig,
    RewardScaler,
    StepConstants,
    chain_log_prob,
    clip_coefs,
    denoise_weights,
    gae,
    ppo_policy_loss,
    sample_chain,
    step_mean,
    update,
)
from tests.fixtures.tiny_policy import OBS, load, train_tiny


def test_clip_schedule_ramps_from_the_noisiest_to_the_last_step() -> None:
    eps = clip_coefs(10, 0.001, 0.01, 3.0)
    assert math.isclose(eps[0], 0.001) and math.isclose(eps[-1], 0.01)
    u = 4 / 9
    want = 0.001 + 0.009 * (math.exp(3 * u) - 1) / (math.exp(3) - 1)
    assert math.isclose(eps[4], want, rel_tol=1e-12)
    assert bool((eps[1:] > eps[:-1]).all())


def test_denoising_discount_weighs_the_noisiest_step_least() -> None:
    w = denoise_weights(10, 0.99)
    assert torch.allclose(w, torch.tensor([0.99 ** (9 - j) for j in range(10)],
                                          dtype=torch.float64))


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v"])
def test_step_mean_is_the_ddpm_posterior_mean(tmp_path, prediction: str) -> None:
    policy = load(train_tiny(tmp_path / "run", "sdp-sdli", iterations=5, prediction=prediction))
    consts = StepConstants.of(policy.schedule)
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(6, policy.cfg.action_size, generator=g), torch.rand(6, OBS, generator=g)
    with torch.no_grad():
        for k in (0, 7, 19):
            eps = policy.denoiser(x, torch.full((6,), k), s)
            ref = policy.schedule.ddpm_step(x, eps, k, None)
            assert torch.allclose(step_mean(policy.denoiser, consts, x, k, s), ref, atol=1e-6)


def test_chain_log_prob_is_the_mean_clamped_gaussian_density_of_each_step(tmp_path) -> None:
    policy = load(train_tiny(tmp_path / "run", "sdp-sdli", iterations=5))
    cfg = DppoConfig(ft_steps=4, sigma_min=0.1, sigma_lp_min=0.2)
    consts = StepConstants.of(policy.schedule)
    s = torch.rand(5, OBS, generator=torch.Generator().manual_seed(1))
    chain, sampled = sample_chain(policy.denoiser, policy.denoiser, consts, s,
                                  policy.cfg.action_size, cfg, torch.Generator().manual_seed(2))
    assert chain.shape == (5, 5, policy.cfg.action_size)
    logp = chain_log_prob(policy.denoiser, consts, s, chain, cfg)
    assert torch.allclose(sampled, logp.detach(), atol=1e-6)  # sampling's own log-probs
    for j in range(4):
        k = 3 - j
        with torch.no_grad():
            eps = policy.denoiser(chain[:, j], torch.full((5,), k), s)
            mean = policy.schedule.ddpm_step(chain[:, j], eps, k, None)
        std = max(math.sqrt(float(policy.schedule.betas[k]) * (
            1 - (float(policy.schedule.alpha_bars[k - 1]) if k else 1.0))
            / (1 - float(policy.schedule.alpha_bars[k]))), 0.2)
        ref = Normal(mean, std).log_prob(chain[:, j + 1]).clamp(-5, 2).mean(-1)
        assert torch.allclose(logp[:, j].detach(), ref, atol=1e-4), j
    again, _ = sample_chain(policy.denoiser, policy.denoiser, consts, s,
                            policy.cfg.action_size, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(chain, again)  # seeded: the same chain


def test_gae_matches_the_recursion_and_does_not_cross_episode_ends() -> None:
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [0.2], [0.1]])
    d = torch.tensor([[0.0], [1.0], [0.0]])
    last = torch.tensor([0.3])
    adv, ret = gae(r, v, d, last, gamma=0.9, lam=0.8)
    d2 = 2.0 + 0.9 * 0.3 - 0.1
    d1 = 0.0 - 0.2  # episode ended: no bootstrap
    d0 = 1.0 + 0.9 * 0.2 - 0.5
    want = torch.tensor([[d0 + 0.9 * 0.8 * d1], [d1], [d2]])
    assert torch.allclose(adv, want) and torch.allclose(ret, want + v)


def test_reward_scaler_divides_by_the_running_return_std() -> None:
    scaler = RewardScaler(envs=2, gamma=0.5)
    out = [scaler(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])) for _ in range(50)]
    rets = torch.tensor([[sum(0.5 ** i for i in range(t + 1)) * v for v in (1.0, 3.0)]
                         for t in range(50)], dtype=torch.float64)
    assert torch.allclose(out[-1], torch.tensor([1.0, 3.0]) / rets.std(unbiased=False))
    state = scaler.state_dict()
    other = RewardScaler(envs=2, gamma=0.5)
    other.load_state_dict(state)
    r = torch.tensor([1.0, 1.0])
    assert torch.equal(other(r, torch.zeros(2)), scaler(r, torch.zeros(2)))


def test_surrogate_at_the_old_policy_and_beyond_the_clip() -> None:
    cfg = DppoConfig(ft_steps=3, clip_base=0.1, clip_top=0.1)
    logp = torch.zeros(4, 3, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 2.0, 0.5])
    out = ppo_policy_loss(logp, torch.zeros(4, 3), adv, cfg)
    w = denoise_weights(3, cfg.gamma_denoise).float()
    want = -float((w.unsqueeze(0) * adv.unsqueeze(1)).mean())
    assert math.isclose(float(out["pg_loss"].detach()), want, rel_tol=1e-6)
    assert float(out["approx_kl"]) == 0.0 and float(out["clipfrac"]) == 0.0
    far = ppo_policy_loss(torch.full((4, 3), 1.0, requires_grad=True), torch.zeros(4, 3),
                          torch.ones(4), cfg)
    far["pg_loss"].backward()
    assert float(far["clipfrac"]) == 1.0  # ratio e > 1.1: clipped, no gradient left


def test_a_short_fine_tuning_run_raises_the_return_of_an_easy_task(tmp_path) -> None:
    """One-step task: reward -mean((chunk - 0.5)^2) in normalised units, whatever the state."""
    torch.manual_seed(0)
    policy = load(train_tiny(tmp_path / "run", "sdp-sdli"))
    actor, frozen = policy.denoiser, copy.deepcopy(policy.denoiser).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    cfg = DppoConfig(ft_steps=10, clip_base=0.02, clip_top=0.2, target_kl=None)
    consts = StepConstants.of(policy.schedule)
    critic = Critic(OBS, hidden=32, blocks=1)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(3)

    def rollout(n: int) -> tuple[dict[str, torch.Tensor], float]:
        s = torch.rand(n, OBS, generator=g) * 2 - 1
        chain, logp = sample_chain(frozen, actor, consts, s, policy.cfg.action_size, cfg, g)
        reward = -(chain[:, -1].clamp(-1, 1) - 0.5).pow(2).mean(-1)
        with torch.no_grad():
            adv = reward - critic(s)
        return {"s": s, "chain": chain, "logp": logp, "adv": adv, "ret": reward}, \
            float(reward.mean())

    returns = []
    for it in range(25):
        batch, ret = rollout(128)
        returns.append(ret)
        update(actor, critic, actor_opt if it >= 2 else None, critic_opt, consts, batch, cfg,
               epochs=4, minibatch=64, generator=g)
    first, last = sum(returns[:3]) / 3, sum(returns[-3:]) / 3
    assert last > first + 0.05, returns
