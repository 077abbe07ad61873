"""The runtime's coefficient-table sampler reproduces the trainer's DDPM and DDIM steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.diffusion import Schedule
from policies.diffusion import ddim_subset as torch_subset
from runtime.sampler import Sampler, ddim_subset, unnormalise


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v"])
@pytest.mark.parametrize("ddim", [None, 10, 5, 2])
def test_coefficient_steps_equal_the_trainer_formulas(ddim: int | None, prediction: str) -> None:
    sch = Schedule.cosine(20, prediction=prediction)
    sampler = Sampler(sch.betas.numpy(), sch.alpha_bars.numpy(), prediction)
    rng = np.random.default_rng(0)
    x, eps, z = (rng.standard_normal((3, 8)) * 2 for _ in range(3))
    ks, coef = sampler.coefficients(ddim)
    assert ks.tolist() == (list(range(19, -1, -1)) if ddim is None else torch_subset(20, ddim))
    for i, k in enumerate(ks):
        got = sampler.step(x, eps, coef[i], z)
        t = [torch.as_tensor(a) for a in (x, eps, z)]
        if ddim is None:
            want = sch.ddpm_step(t[0], t[1], int(k), t[2]).numpy()
        else:
            k_prev = int(ks[i + 1]) if i + 1 < len(ks) else -1
            want = sch.ddim_step(t[0], t[1], int(k), k_prev).numpy()
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_sample_prediction_takes_the_output_as_the_clean_chunk() -> None:
    sch = Schedule.cosine(20)
    eps_s = Sampler(sch.betas.numpy(), sch.alpha_bars.numpy())
    x0_s = Sampler(sch.betas.numpy(), sch.alpha_bars.numpy(), "sample")
    _, coef = x0_s.coefficients(2)
    x, out = np.full((1, 3), 0.5), np.array([[0.2, -3.0, 0.9]])
    last = coef[-1]  # DDIM's last step returns x0_hat itself
    np.testing.assert_array_equal(x0_s.step(x, out, last, np.zeros_like(x)), [[0.2, -1.0, 0.9]])
    assert not np.allclose(eps_s.step(x, out, last, np.zeros_like(x)), [[0.2, -1.0, 0.9]])
    with pytest.raises(ValueError, match="prediction must be one of epsilon, sample, v"):
        Sampler(sch.betas.numpy(), sch.alpha_bars.numpy(), "x0")


def test_v_prediction_inverts_the_trainers_target() -> None:
    """The trainer's v target at step k, handed to the runtime's step, gives back x0 (the
    DDIM step's last row returns x0_hat itself)."""
    sch = Schedule.cosine(20, prediction="v")
    sampler = Sampler(sch.betas.numpy(), sch.alpha_bars.numpy(), "v")
    rng = np.random.default_rng(1)
    x0, eps = rng.uniform(-1, 1, (4, 6)), rng.standard_normal((4, 6))
    ks, coef = sampler.coefficients(3)
    for i, k in enumerate(ks):
        kk = torch.full((4,), int(k))
        xk = sch.add_noise(torch.as_tensor(x0), torch.as_tensor(eps), kk).numpy()
        v = sch.target(torch.as_tensor(x0), torch.as_tensor(eps), kk).numpy()
        x0_hat = sch.x0_hat(torch.as_tensor(xk), torch.as_tensor(v), int(k)).numpy()
        np.testing.assert_allclose(x0_hat, x0, atol=1e-12)
        if i + 1 == len(ks):
            np.testing.assert_allclose(sampler.step(xk, v, coef[i], eps), x0, atol=1e-12)


def test_subsets_and_unnormalising() -> None:
    assert ddim_subset(20, 5) == [19, 14, 10, 5, 0]
    with pytest.raises(ValueError, match="1..20"):
        ddim_subset(20, 21)
    lo, hi = np.array([0.0, 2.0]), np.array([1.0, 2.0])  # second dimension constant
    out = unnormalise(np.array([[-1.0, 0.3, 1.0, -0.7]]), lo, hi, chunk=2)
    np.testing.assert_allclose(out, [[[0.0, 2.0], [1.0, 2.0]]])
