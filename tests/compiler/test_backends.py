"""ONNX float and fixed-point graphs and the Lava processes against the numpy references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.conformance import session
from compiler.export import export_policy
from compiler.fold import fold
from compiler.onnx_chunk import build_chunk
from compiler.onnx_fixed import build_core, drive_bounds, spike_dtypes
from compiler.onnx_fixed import build_eval as build_fixed_eval
from compiler.onnx_float import build_eval, build_step
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from runtime.fixed_point import FixedCore, FixedPopulation
from runtime.lava_core import LavaHardwareUnavailable, loihi2_hardware_available, run_core
from runtime.sampler import Sampler
from tests.fixtures.tiny_policy import load


def _batch(net, n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1.2, 1.2, (n, net.enc_w1.shape[1])),
            rng.standard_normal((n, net.action_size)), rng.integers(0, 20, n))


def _feed(obs, x, k, dtype=np.float64) -> dict:
    return {"obs": obs.astype(dtype), "x": x.astype(dtype), "k": k}


@pytest.mark.parametrize("kind", ["sdp", "sdp-sdli", "ann"])
def test_onnx_float_graph_equals_the_numpy_network(tiny_runs: dict[str, Path], kind: str) -> None:
    net = fold(export_policy(load(tiny_runs[kind])))
    obs, x, k = _batch(net)
    eps = session(build_eval(net, np.float64)).run(["eps"], _feed(obs, x, k))[0]
    np.testing.assert_allclose(eps, net.eps(x, k, obs), atol=1e-12)
    eps32 = session(build_eval(net, np.float32)).run(["eps"], _feed(obs, x, k, np.float32))[0]
    assert eps32.dtype == np.float32 and np.isfinite(eps32).all()


def test_single_step_graph_with_explicit_state_equals_the_whole_evaluation(
        tiny_runs: dict[str, Path]) -> None:
    net = fold(export_policy(load(tiny_runs["sdp-sdli"])))
    obs, x, k = _batch(net)
    step = session(build_step(net))
    state = {f"v{i + 1}": np.zeros((len(k), w)) for i, w in enumerate(net.widths)}
    state["counts"] = np.zeros((len(k), net.widths[-1]))
    for t in range(net.micro_steps):
        outs = step.run(None, {**_feed(obs, x, k), "t": np.array(t, np.int64), **state})
        state = {f"v{i + 1}": outs[i] for i in range(len(net.widths))}
        state["counts"] = outs[len(net.widths)]
    np.testing.assert_allclose(outs[-1], net.eps(x, k, obs), atol=1e-12)
    with pytest.raises(ValueError, match="spiking"):
        build_step(fold(export_policy(load(tiny_runs["ann"]))))


def _quantized(tiny_runs: dict[str, Path], groups: int = 3):
    net = sort_by_weight_scale(fold(export_policy(load(tiny_runs["sdp-sdli"]))))
    obs, x, k = _batch(net)
    current = net.first_layer_current(x, k, obs)
    return net, quantize_net(net, current, LOIHI2, groups=groups).core, (obs, x, k), current


def test_onnx_fixed_point_is_bit_exact_with_the_reference(tiny_runs: dict[str, Path]) -> None:
    net, core, (obs, x, k), current = _quantized(tiny_runs)
    a_in = core.quantize_input(current)
    ref = core.run(a_in)
    got = session(build_core(core, a_in.shape[0])).run(None, {"a_in": a_in})
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_array_equal(g.astype(bool), r)
    assert 0.02 < np.mean(ref[-1]) < 0.9  # the comparison is not between silent networks
    eps = session(build_fixed_eval(net, core)).run(["eps"], _feed(obs, x, k))[0]
    counts = ref[-1].sum(0).astype(np.float64)
    np.testing.assert_array_equal(eps, net.readout(counts, net.output_bias(obs)))


def test_onnx_fixed_point_wraps_the_current_like_lava() -> None:
    n = 3
    pop = FixedPopulation(vth=np.full(n, 100), du=4095, dv=100, bias_mant=np.zeros(n, int),
                          bias_exp=np.zeros(n, int), weight_exp=np.zeros(n, int), groups=[n])
    core = FixedCore(input_scale=1.0, input_max=1 << 20, populations=[pop], weights=[])
    a_in = np.array([(1 << 17) + 5, -(1 << 17) - 7, 50], np.int64).reshape(1, 1, n)
    a_in = np.repeat(a_in, 4, axis=0)
    ref = core.run(a_in)[0]
    got = session(build_core(core, a_in.shape[0])).run(None, {"a_in": a_in})[0].astype(bool)
    np.testing.assert_array_equal(got, ref)
    assert not ref[:, 0, 0].any()  # 2^23 + 320 wrapped negative: never fires


def test_lava_fixed_point_matches_the_reference_with_groups_and_three_layers() -> None:
    rng = np.random.default_rng(3)
    widths, groups = [6, 9, 4], [[6], [3, 3, 3], [2, 2]]
    pops = []
    for n, g in zip(widths, groups, strict=True):
        pops.append(FixedPopulation(
            vth=np.repeat(rng.integers(20, 60, len(g)), g), du=4095, dv=int(rng.integers(200, 900)),
            bias_mant=rng.integers(-300, 600, n), bias_exp=rng.integers(0, 3, n),
            weight_exp=np.repeat(rng.integers(0, 3, len(g)), g), groups=g))
    weights = [2 * rng.integers(-60, 100, (9, 6)), 2 * rng.integers(-60, 100, (4, 9))]
    core = FixedCore(input_scale=1.0, input_max=5000, populations=pops, weights=weights)
    a_in = rng.integers(-20, 80, (5, 4, 6))  # 5 evaluations of T = 4
    lava = run_core(core, a_in, "fixed_pt")
    ref = core.run(a_in.transpose(1, 0, 2))
    for got, want in zip(lava, ref, strict=True):
        np.testing.assert_array_equal(got, want.transpose(1, 0, 2))
    assert all(0 < r.mean() < 1 for r in ref)


def test_lava_float_matches_the_float_network(tiny_runs: dict[str, Path]) -> None:
    net = fold(export_policy(load(tiny_runs["sdp"])))
    obs, x, k = _batch(net, n=6)
    current = net.first_layer_current(x, k, obs)
    lava = run_core(net, current.transpose(1, 0, 2), "floating_pt")
    for got, want in zip(lava, net.spike_counts(current), strict=True):
        np.testing.assert_array_equal(got.sum(1), want)
    with pytest.raises(ValueError, match="tag"):
        run_core(net, current, "bit_accurate")


def test_hardware_path_says_clearly_when_the_chip_cannot_be_targeted() -> None:
    core = FixedCore(input_scale=1.0, input_max=10, populations=[FixedPopulation(
        vth=np.ones(2, int), du=4095, dv=0, bias_mant=np.zeros(2, int), bias_exp=np.zeros(2, int),
        weight_exp=np.zeros(2, int), groups=[2])], weights=[])
    if loihi2_hardware_available():
        pytest.skip("lava-loihi is installed here")
    with pytest.raises(LavaHardwareUnavailable, match="lava-loihi not installed"):
        run_core(core, np.zeros((1, 4, 2), np.int32), "loihi2-hw")


@pytest.mark.parametrize(("ddim", "prediction"), [(None, "epsilon"), (4, "epsilon"),
                                                  (None, "sample"), (4, "v")])
def test_chunk_graphs_equal_the_numpy_sampler(tiny_runs: dict[str, Path],
                                              ddim: int | None, prediction: str) -> None:
    net, core, (obs, _, _), _ = _quantized(tiny_runs)
    obs = obs[:6]
    betas = np.linspace(1e-3, 0.2, 20)
    sampler = Sampler(betas, np.cumprod(1 - betas), prediction)
    ks, coef = sampler.coefficients(ddim)

    def fixed_eps(x, k):
        last = core.run(core.quantize_input(net.first_layer_current(x, k, obs)))[-1]
        return net.readout(last.sum(0).astype(np.float64), net.output_bias(obs))

    for c, eps_fn in ((None, lambda x, k: net.eps(x, k, obs)), (core, fixed_eps)):
        x, z = sampler.draw(np.random.default_rng(5), len(obs), net.action_size, len(ks))
        want = sampler.sample(eps_fn, len(obs), net.action_size, np.random.default_rng(5), ddim)
        x0, spikes = session(build_chunk(net, c, prediction)).run(
            None, {"obs": obs, "x": x, "ks": ks, "coef": coef, "z": z})
        np.testing.assert_array_equal(x0, want)
        assert spikes.shape == (len(ks), len(net.widths)) and (spikes[:, 0] > 0).all()


def test_fixed_point_graph_leaves_out_only_wraps_and_clips_that_cannot_act(
        tiny_runs: dict[str, Path]) -> None:
    _, core, _, current = _quantized(tiny_runs)
    a_in = core.quantize_input(current)

    def counted(fits: list[tuple[int, int]]) -> None:
        ops = [n.op_type for n in build_core(core, 4).graph.node]
        assert ops.count("LessOrEqual") == sum(4 - u for u, _ in fits)  # one per wrap
        assert ops.count("Clip") == sum(4 - v for _, v in fits)
        got = session(build_core(core, 4)).run(None, {"a_in": a_in})
        for r, g in zip(core.run(a_in), got, strict=True):
            np.testing.assert_array_equal(g.astype(bool), r)

    fits = drive_bounds(core, 4)
    assert fits[1:] == [(4, 4)] * (len(fits) - 1)  # spikes in: small drives
    counted(fits)
    core.input_max = 1 << 20  # a graded input that could pass 2^23 keeps both checks
    assert drive_bounds(core, 4)[0] == (0, 0)
    counted(drive_bounds(core, 4))
    core.input_max = (1 << 17) - 1  # the first step fits, the decayed second may not
    u_safe, v_safe = drive_bounds(core, 4)[0]
    assert u_safe == 4 and v_safe == 1
    counted(drive_bounds(core, 4))


def test_spike_products_run_in_float32_only_where_every_partial_sum_is_exact() -> None:
    """A drive below 2^24 runs in float32 (MLAS), one that could pass it in float64; both
    give the reference's spikes, also where the float32 products sit right at the bound."""
    rng = np.random.default_rng(4)

    def core_with(weight: int, n_in: int) -> FixedCore:
        pops = [FixedPopulation(vth=np.full(n, 30), du=4095, dv=300,
                                bias_mant=np.zeros(n, int), bias_exp=np.zeros(n, int),
                                weight_exp=np.zeros(n, int), groups=[n]) for n in (n_in, 3)]
        return FixedCore(input_scale=1.0, input_max=4000, populations=pops,
                         weights=[np.full((3, n_in), weight)])

    for weight, want in ((127, np.float32), (-128, np.float64)):
        core = core_with(weight, 2048)  # 2048 x 127 x 64 < 2^24 <= 2048 x 128 x 64
        assert spike_dtypes(core) == [want, np.float64]
        a_in = rng.integers(200, 4000, (4, 2, 2048))
        got = session(build_core(core, 4)).run(None, {"a_in": a_in})
        for r, g in zip(core.run(a_in), got, strict=True):
            np.testing.assert_array_equal(g.astype(bool), r)
        assert got[0].mean() > 0.5  # most inputs fire: the drives are near their bound


@pytest.mark.parametrize("fixed", [False, True])
def test_a_batched_chunk_call_gives_each_row_what_its_own_call_gives(
        tiny_runs: dict[str, Path], fixed: bool) -> None:
    """N candidates (or environments) in one call, each with its own noise: every row bit
    for bit the B = 1 result, and the spikes per step their sum."""
    net, core, _, _ = _quantized(tiny_runs)
    exported = export_policy(load(tiny_runs["sdp-sdli"]))
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"])
    ks, coef = sampler.coefficients(None)
    sess = session(build_chunk(net, core if fixed else None))
    rng = np.random.default_rng(7)
    obs = rng.uniform(-1, 1, (16, net.enc_w1.shape[1]))
    x, z = sampler.draw(rng, 16, net.action_size, len(ks))
    x0, spikes = sess.run(None, {"obs": obs, "x": x, "ks": ks, "coef": coef, "z": z})
    total = np.zeros_like(spikes)
    for i in range(16):
        one, s1 = sess.run(None, {"obs": obs[i:i + 1], "x": x[i:i + 1], "ks": ks, "coef": coef,
                                  "z": z[:, i:i + 1]})
        np.testing.assert_array_equal(one[0], x0[i])
        total += s1
    np.testing.assert_array_equal(total, spikes)
    assert spikes.sum() > 0
