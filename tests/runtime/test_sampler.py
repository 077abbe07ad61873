"""The runtime's coefficient-table sampler reproduces the trainer's DDPM and DDIM steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.diffusion import Schedule
from policies.diffusion import ddim_subset as torch_subset
from runtime.sampler import Sampler, ddim_subset, unnormalise


@pytest.mark.parametrize("ddim", [None, 10, 5, 2])
def test_coefficient_steps_equal_the_trainer_formulas(ddim: int | None) -> None:
    sch = Schedule.cosine(20)
    sampler = Sampler(sch.betas.numpy(), sch.alpha_bars.numpy())
    rng = np.random.default_rng(0)
    x, eps, z = (rng.standard_normal((3, 8)) * 2 for _ in range(3))
    ks, coef = sampler.coefficients(ddim)
    assert ks.tolist() == (list(range(19, -1, -1)) if ddim is None else torch_subset(20, ddim))
    for i, k in enumerate(ks):
        got = Sampler.step(x, eps, coef[i], z)
        t = [torch.as_tensor(a) for a in (x, eps, z)]
        if ddim is None:
            want = sch.ddpm_step(t[0], t[1], int(k), t[2]).numpy()
        else:
            k_prev = int(ks[i + 1]) if i + 1 < len(ks) else -1
            want = sch.ddim_step(t[0], t[1], int(k), k_prev).numpy()
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_subsets_and_unnormalising() -> None:
    assert ddim_subset(20, 5) == [19, 14, 10, 5, 0]
    with pytest.raises(ValueError, match="1..20"):
        ddim_subset(20, 21)
    lo, hi = np.array([0.0, 2.0]), np.array([1.0, 2.0])  # second dimension constant
    out = unnormalise(np.array([[-1.0, 0.3, 1.0, -0.7]]), lo, hi, chunk=2)
    np.testing.assert_allclose(out, [[[0.0, 2.0], [1.0, 2.0]]])
