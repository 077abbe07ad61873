"""Observation normalisation: robust ranges, constants kept visible."""

from __future__ import annotations

import torch

from policies.normalize import MinMax


def test_robust_range_ignores_a_few_transients() -> None:
    """A field spread over [-1, 1] with 0.2% contact spikes at 20: min-max squeezes the
    bulk into a tenth of the range, the robust fit keeps it near [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5000, 1, generator=g) * 2 - 1
    x[:10] = 20.0
    bulk = torch.linspace(-1, 1, 5).unsqueeze(1)
    squeezed = MinMax.fit(x)(bulk)
    robust = MinMax.fit_robust(x)(bulk)
    assert float(squeezed.max() - squeezed.min()) < 0.25
    assert 1.7 < float(robust.max() - robust.min()) <= 2.0
    assert float(MinMax.fit_robust(x)(torch.tensor([[20.0]]))) > 10  # still seen, unclipped


def test_a_field_constant_in_the_data_still_reaches_the_policy() -> None:
    """``order_fault`` is 0 throughout the demonstrations: min-max maps it to 0 for ever,
    the robust fit maps it to x - 0, so a fault shows."""
    x = torch.zeros(1000, 2)
    x[:, 1] = torch.linspace(0, 1, 1000)
    fault = torch.tensor([[1.0, 0.5]])
    assert float(MinMax.fit(x)(fault)[0, 0]) == 0.0
    assert float(MinMax.fit_robust(x)(fault)[0, 0]) == 1.0
    # and the fitted buffers go through the checkpoint like any other
    norm = MinMax(2)
    norm.load_state_dict(MinMax.fit_robust(x).state_dict())
    assert torch.equal(norm(fault), MinMax.fit_robust(x)(fault))
