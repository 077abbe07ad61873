"""The state readout (``--state-readout``): eps + W_s c, trained, folded and compiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compiler import conformance as conf
from compiler.export import export_policy
from compiler.fold import fold
from compiler.onnx_chunk import build_chunk
from compiler.onnx_fixed import build_eval as build_fixed_eval
from compiler.onnx_float import build_eval, build_step
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from policies.config import PolicyConfig
from policies.ops import layout
from policies.policy import DiffusionPolicy
from runtime.loader import load_flight_policy
from runtime.network import FoldedNet
from runtime.sampler import Sampler
from tests.fixtures.tiny_policy import compile_tiny, load, train_tiny


@pytest.fixture(scope="module")
def readout_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("state-readout")
    return {kind: train_tiny(root / kind, kind, state_readout=True, prediction="sample")
            for kind in ("sdp-sdli", "ann")}


def test_the_state_readout_adds_a_map_of_the_state_current() -> None:
    cfg = PolicyConfig(kind="sdp", obs_dim=5, act_dim=2, hidden=(8, 6), obs_hidden=4,
                       emb_dim=4, state_readout=True)
    den = DiffusionPolicy(cfg).denoiser
    assert not den.state_readout.weight.any()  # zero at first: the layout's output unchanged
    torch.nn.init.normal_(den.state_readout.weight)
    x, k, obs = torch.randn(3, cfg.action_size), torch.tensor([0, 5, 9]), torch.randn(3, 5)
    with torch.no_grad():
        full = den(x, k, obs)
        w = den.state_readout.weight.clone()
        den.state_readout.weight.zero_()
        plain = den(x, k, obs)
    torch.testing.assert_close(full - plain, den.obs_encoder(obs).detach() @ w.T)
    twin = PolicyConfig(**{**cfg.to_dict(), "kind": "ann", "hidden": (8, 6)})
    assert DiffusionPolicy(twin).denoiser.state_readout.weight.shape == (8, 8)
    assert layout(cfg).obs_macs(False) - layout(PolicyConfig(
        **{**cfg.to_dict(), "state_readout": False})).obs_macs(False) == 4 * cfg.action_size


@pytest.mark.parametrize("kind", ["sdp-sdli", "ann"])
def test_folded_graphs_and_torch_agree(readout_runs: dict[str, Path], kind: str) -> None:
    policy = load(readout_runs[kind])
    assert policy.denoiser.state_readout.weight.abs().max() > 1e-4  # trained, not zero
    exported = export_policy(policy)
    net = fold(exported)
    assert net.state_w.shape == (policy.cfg.action_size, policy.cfg.obs_hidden)
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1.2, 1.2, (24, net.enc_w1.shape[1]))
    x, k = rng.standard_normal((24, net.action_size)), rng.integers(0, 20, 24)
    plain = FoldedNet(**{**net.__dict__, "state_w": None})
    assert np.abs(net.eps(x, k, obs) - plain.eps(x, k, obs)).max() > 1e-4
    eps = conf.session(build_eval(net)).run(["eps"], {"obs": obs, "x": x, "k": k})[0]
    np.testing.assert_allclose(eps, net.eps(x, k, obs), atol=1e-12)
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"], "sample")
    err = conf.float_vs_torch(policy, conf.session(build_eval(net)), sampler, 40, 0)
    assert err["max_abs_error"] < 1e-9
    again = FoldedNet.from_arrays(*net.to_arrays())
    np.testing.assert_array_equal(again.state_w, net.state_w)
    if kind == "ann":
        return
    step = conf.session(build_step(net))
    state = {f"v{i + 1}": np.zeros((24, w)) for i, w in enumerate(net.widths)}
    state["counts"] = np.zeros((24, net.widths[-1]))
    for t in range(net.micro_steps):
        outs = step.run(None, {"obs": obs, "x": x, "k": k, "t": np.array(t), **state})
        state = {f"v{i + 1}": outs[i] for i in range(len(net.widths))}
        state["counts"] = outs[len(net.widths)]
    np.testing.assert_allclose(outs[-1], net.eps(x, k, obs), atol=1e-12)
    net = sort_by_weight_scale(net)
    core = quantize_net(net, net.first_layer_current(x, k, obs), LOIHI2, groups=2).core
    ref = core.run(core.quantize_input(net.first_layer_current(x, k, obs)))[-1]
    fixed = conf.session(build_fixed_eval(net, core)).run(["eps"], {"obs": obs, "x": x, "k": k})
    counts = ref.sum(0).astype(np.float64)
    np.testing.assert_allclose(fixed[0], net.readout(counts, net.output_bias(obs)), atol=1e-12)
    ks, coef = sampler.coefficients(None)
    xs, z = sampler.draw(np.random.default_rng(5), 6, net.action_size, len(ks))
    want = sampler.sample(lambda xx, kk: net.eps(xx, kk, obs[:6]), 6, net.action_size,
                          np.random.default_rng(5))
    x0, _ = conf.session(build_chunk(net, None, "sample")).run(
        None, {"obs": obs[:6], "x": xs, "ks": ks, "coef": coef, "z": z})
    np.testing.assert_allclose(x0, want, atol=1e-12)


def test_a_compiled_image_flies_the_state_readout(readout_runs: dict[str, Path],
                                                  tmp_path: Path) -> None:
    from runtime.keys import save_keypair

    private, public = save_keypair(tmp_path / "k")
    image = tmp_path / "r.sfimg"
    image.write_bytes(compile_tiny(readout_runs["sdp-sdli"], "loihi2", private))
    flight = load_flight_policy(image, public)
    assert flight.net.state_w is not None and flight.layout().state_readout
