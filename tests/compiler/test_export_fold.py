"""Export to NIR and the folding passes: the folded numpy network is the trained one."""

from __future__ import annotations

import copy
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from compiler.closed_loop import CompiledPolicy
from compiler.export import export_policy, read_nir, write_nir
from compiler.fold import fold
from compiler.quantize import sort_by_weight_scale
from runtime.network import FoldedNet
from runtime.sampler import Sampler, unnormalise
from tests.fixtures.tiny_policy import load


def _inputs(policy, n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    lo, hi = policy.obs_norm.lo.numpy(), policy.obs_norm.hi.numpy()
    obs = lo + (hi - lo) * rng.uniform(-0.2, 1.2, (n, len(lo)))  # inside and outside the box
    x = rng.standard_normal((n, policy.cfg.action_size))
    k = rng.integers(0, policy.cfg.diffusion_steps, n)
    return obs, x, k


def _torch_eps(policy, obs, x, k) -> np.ndarray:
    p64 = copy.deepcopy(policy).double()
    with torch.no_grad():
        s = p64.obs_norm(torch.as_tensor(obs))
        return p64.denoiser(torch.as_tensor(x), torch.as_tensor(k), s).numpy()


@pytest.mark.parametrize("kind", ["sdp", "sdp-sdli", "ann"])
def test_folded_network_equals_the_torch_denoiser(tiny_runs: dict[str, Path], kind: str) -> None:
    policy = load(tiny_runs[kind])
    net = fold(export_policy(policy))
    obs, x, k = _inputs(policy)
    ref = _torch_eps(policy, obs, x, k)
    np.testing.assert_allclose(net.eps(x, k, obs), ref, atol=1e-9)
    assert net.spiking == (kind != "ann") and (net.sdli_w is not None) == (kind == "sdp-sdli")


@pytest.mark.parametrize("kind", ["sdp-sdli", "ann"])
def test_the_ground_adapter_flies_the_folded_network(tiny_runs: dict[str, Path],
                                                     kind: str) -> None:
    """``CompiledPolicy`` (the compiler's ground runs) samples with the folded network
    itself, the ANN twin's relu layers included."""
    policy = load(tiny_runs[kind])
    exported = export_policy(policy)
    net, host = fold(exported), exported.host
    sampler = Sampler(host["betas"], host["alpha_bars"], exported.meta["prediction"])
    obs = _inputs(policy, n=5)[0]
    got = CompiledPolicy(policy.cfg, net, sampler, host["act_lo"], host["act_hi"]).act(
        obs, generator=torch.Generator().manual_seed(3))
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(3)))
    x = sampler.sample(lambda xx, kk: net.eps(xx, kk, obs), 5, net.action_size,
                       np.random.default_rng(seed))
    want = unnormalise(x, host["act_lo"], host["act_hi"], policy.cfg.chunk)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_sorting_neurons_by_weight_scale_is_exact(tiny_runs: dict[str, Path]) -> None:
    policy = load(tiny_runs["sdp-sdli"])
    net = fold(export_policy(policy))
    obs, x, k = _inputs(policy)
    srt = sort_by_weight_scale(net)
    assert not np.array_equal(srt.hidden_w[0], net.hidden_w[0])  # really permuted
    np.testing.assert_array_equal(srt.eps(x, k, obs), net.eps(x, k, obs))


def test_nir_file_round_trip_keeps_graph_and_semantics(tiny_runs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    exported = export_policy(load(tiny_runs["sdp-sdli"]))
    write_nir(tmp_path / "g.nir", exported.graph)
    back = read_nir(tmp_path / "g.nir")
    assert sorted(back.edges) == sorted(exported.graph.edges)
    assert back.nodes.keys() == exported.graph.nodes.keys()
    for name, node in exported.graph.nodes.items():
        assert type(back.nodes[name]) is type(node)
        for attr in ("weight", "bias", "tau", "r", "v_threshold", "v_leak", "v_reset"):
            if hasattr(node, attr):
                np.testing.assert_array_equal(getattr(back.nodes[name], attr), getattr(node, attr))
    lif = back.nodes["lif1"]
    assert isinstance(lif, nir.LIF)
    assert lif.metadata["reset"] == "zero" and not lif.metadata["reset_delay"]
    assert float(lif.metadata["dt"]) == 1.0 and int(lif.metadata["micro_steps"]) == 4
    assert bool(back.nodes["cond"].metadata["graded"])
    # forward Euler of tau dv/dt = -v + R I with dt / tau = 1 - beta gives v <- beta v + I
    beta = float(lif.metadata["beta"])
    np.testing.assert_allclose(1.0 / lif.tau, 1 - beta)
    np.testing.assert_allclose(lif.r / lif.tau, 1.0)
    # the graph read back folds to the same network
    again = copy.copy(exported)
    again.graph = back
    a, b = fold(exported), fold(again)
    for f in ("w_in", "bias_table", "readout_w", "enc_w2"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_folded_network_round_trips_through_arrays(tiny_runs: dict[str, Path]) -> None:
    net = fold(export_policy(load(tiny_runs["sdp-sdli"])))
    arrays, scalars = net.to_arrays()
    back = FoldedNet.from_arrays(arrays, scalars)
    policy = load(tiny_runs["sdp-sdli"])
    obs, x, k = _inputs(policy)
    np.testing.assert_array_equal(back.eps(x, k, obs), net.eps(x, k, obs))
    assert back.sdli_invert == net.sdli_invert and back.micro_steps == net.micro_steps
