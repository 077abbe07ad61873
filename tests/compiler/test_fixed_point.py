"""Loihi 2 fixed point: the numpy reference against hand-computed spikes, the quantisation
pass and its limit checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from compiler.export import export_policy
from compiler.fold import fold
from compiler.mapping import map_cores
from compiler.quantize import quantize_leak, quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from runtime.fixed_point import FixedCore, FixedPopulation, decay, wrap24
from tests.fixtures.tiny_policy import OBS, load


def _pop(vth, dv, bias_mant, bias_exp, weight_exp, groups=None) -> FixedPopulation:
    n = len(bias_mant)
    return FixedPopulation(vth=np.full(n, vth) if np.isscalar(vth) else np.asarray(vth),
                           du=4095, dv=dv, bias_mant=np.asarray(bias_mant),
                           bias_exp=np.asarray(bias_exp), weight_exp=np.full(n, weight_exp),
                           groups=groups or [n])


def hand_core() -> FixedCore:
    return FixedCore(input_scale=1.0, input_max=1000,
                     populations=[_pop(10, 2048, [0, 0], [0, 0], 0),
                                  _pop(8, 0, [3], [2], 1)],
                     weights=[np.array([[6, 2]])])


def test_reference_matches_spikes_computed_by_hand() -> None:
    # population 1: u = a << 6, v <- v/2 + u, threshold 10 << 6 = 640
    #   a = 7:  v = 448, 224 + 448 = 672 > 640 (spike), 448, 672 (spike)
    #   a = 12: v = 768 > 640 every step
    # population 2: a = (6 s_0 + 2 s_1) << 1, v <- v + (a << 6) + (3 << 2), threshold 512
    #   t0: 256 + 12 = 268; t1: 268 + 1024 + 12 > 512 (spike); t2: 268; t3: spike
    a_in = np.tile(np.array([7, 12]), (4, 1, 1))  # (T, B, H1)
    s1, s2 = hand_core().run(a_in)
    assert s1[:, 0, 0].tolist() == [False, True, False, True]
    assert s1[:, 0, 1].tolist() == [True, True, True, True]
    assert s2[:, 0, 0].tolist() == [False, True, False, True]


def test_decay_truncates_toward_zero_and_current_wraps_at_24_bits() -> None:
    assert decay(np.array([-5, 5]), 2048).tolist() == [-2, 2]  # floor would give -3
    assert decay(np.array([-4097]), 0).tolist() == [-4097]
    top = 1 << 23
    assert wrap24(np.array([top + 5, top, -top, -top - 3])).tolist() == \
        [-top + 5, top, top, top - 3]


def test_leak_rounding_and_its_limit() -> None:
    out: list = []
    assert quantize_leak(0.9, "lif1", LOIHI2, out) == 410 and not out
    quantize_leak(0.99999, "lif2", LOIHI2, out)
    assert len(out) == 1 and out[0].layer == "lif2" and "leak" in out[0].limit


def test_quantised_network_tracks_the_float_one(tiny_runs: dict[str, Path]) -> None:
    net = sort_by_weight_scale(fold(export_policy(load(tiny_runs["sdp-sdli"]))))
    rng = np.random.default_rng(1)
    obs, x = rng.uniform(-1, 1, (256, OBS)), rng.standard_normal((256, net.action_size))
    k = rng.integers(0, 20, 256)
    current = net.first_layer_current(x, k, obs)
    q = quantize_net(net, current, LOIHI2, groups=4)
    assert not q.violations
    assert q.core.populations[1].groups == [6, 6, 6, 6]
    assert all(abs(w).max() <= 254 and (w % 2 == 0).all() for w in q.core.weights)
    rasters = q.core.run(q.core.quantize_input(current))
    counts = net.spike_counts(current)
    for r, c in zip(rasters, counts, strict=True):
        assert np.mean(r.sum(0) != c) < 0.05  # few spike counts move by quantisation
    assert max(q.weight_rmse) < 0.01


def test_every_violation_is_reported_with_its_layer() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (16, 8))
    w[:, 0] = 1e4  # one huge weight per row: the rest round to zero
    net = dataclasses.replace(
        small_net(rng), hidden_w=[w], hidden_b=[np.zeros(16)], beta_lif=0.99999)
    q = quantize_net(net, np.ones(3), LOIHI2)
    assert any(v.layer == "lif1" and "leak" in v.limit for v in q.violations)
    assert any(v.layer == "lif2" and "leak" in v.limit for v in q.violations)
    assert any(v.layer == "dense1 -> lif2" and "round" in v.limit for v in q.violations)
    maps, structural = map_cores([5000, 16], [[5000], [16]], LOIHI2)
    assert maps[0].cores == 5
    assert [(v.layer, v.value) for v in structural] == [("dense1 -> lif2", "5000")]
    _, too_many = map_cores([1024] * 130, [[1024]] * 130, LOIHI2)
    assert any(v.limit == "cores" and v.value == "130" for v in too_many)


def small_net(rng: np.random.Generator):
    """A small FoldedNet with random parameters (8 neurons in, obs 3, chunk 2)."""
    from runtime.network import FoldedNet

    return FoldedNet(enc_w1=rng.normal(size=(4, 3)), enc_b1=np.zeros(4),
                     enc_w2=rng.normal(size=(8, 4)), enc_b2=np.zeros(8),
                     w_in=rng.normal(size=(8, 2)), bias_table=rng.normal(size=(20, 8)),
                     hidden_w=[rng.normal(size=(16, 8))], hidden_b=[np.zeros(16)],
                     readout_w=rng.normal(size=(2, 16)), readout_b=np.zeros(2),
                     beta_lif=0.9, micro_steps=4)


def test_core_round_trips_through_arrays() -> None:
    core = hand_core()
    arrays, scalars = core.to_arrays()
    back = FixedCore.from_arrays(arrays, scalars)
    a_in = np.random.default_rng(0).integers(-20, 20, (4, 5, 2))
    for r, s in zip(back.run(a_in), core.run(a_in), strict=True):
        np.testing.assert_array_equal(r, s)
