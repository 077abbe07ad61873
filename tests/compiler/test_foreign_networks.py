"""Networks built outside spikeflight's trainer: each is compiled exactly from its own
modules' parameters, or refused in one line naming the module and what is supported."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import snntorch as snn
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from compiler import conformance as conf
from compiler.export import export_policy
from compiler.fold import fold
from compiler.neurons import UnsupportedNetwork
from compiler.onnx_fixed import build_core
from compiler.onnx_float import build_eval
from compiler.quantize import quantize_net, sort_by_weight_scale
from hardware.loihi2 import LOIHI2
from policies.denoiser import SpikingDenoiser
from runtime.keys import save_keypair
from runtime.sampler import Sampler
from tests.fixtures.tiny_policy import load


def with_lifs(run: Path, *make) -> torch.nn.Module:
    """The tiny trained policy with its populations replaced by ``make[i](width)``."""
    policy = load(run)
    for i, width in enumerate(policy.cfg.hidden):
        policy.denoiser.lifs[i] = make[i % len(make)](width)
    return policy


def zero_reset(beta: float = 0.9, **kw):
    return lambda width: snn.Leaky(beta=beta, reset_mechanism="zero", reset_delay=False, **kw)


def max_float_error(policy, exported=None) -> float:
    """Max action error of the ONNX float graph of ``exported`` (default: the policy's
    export) against the trained torch network itself."""
    exported = exported or export_policy(policy)
    net = fold(exported)
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"],
                      exported.meta["prediction"])
    sess = conf.session(build_eval(net, np.float64))
    return conf.float_vs_torch(policy, sess, sampler, samples=40, seed=0)["max_abs_error"]


def test_snntorch_leaky_with_its_own_beta_and_scalar_threshold_compiles_exactly(
        tiny_runs: dict[str, Path]) -> None:
    # beta 0.7 in the modules, 0.9 in the config: the modules' value is what was trained
    policy = with_lifs(tiny_runs["sdp"], zero_reset(0.7))
    assert policy.cfg.lif_beta == 0.9
    exported = export_policy(policy)
    assert exported.meta["lif_beta"] == float(torch.tensor(0.7, dtype=torch.float32))
    assert max_float_error(policy) == 0.0
    stale = copy.deepcopy(exported)  # what reading beta from config.json would compile
    stale.meta["lif_beta"] = policy.cfg.lif_beta
    assert max_float_error(policy, stale) > 0.01
    net = sort_by_weight_scale(fold(exported))
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (16, net.enc_w1.shape[1]))
    x, k = rng.standard_normal((16, net.action_size)), rng.integers(0, 20, 16)
    current = net.first_layer_current(x, k, obs)
    core = quantize_net(net, current, LOIHI2, groups=2).core
    a_in = core.quantize_input(current).transpose(1, 0, 2)
    counts, lava = conf.fixed_vs_lava(conf.session(build_core(core, net.micro_steps)), core,
                                      a_in)
    assert counts["mismatches"] == 0 and counts["values"] > 0
    assert 0.01 < np.mean(lava[-1]) < 0.95  # not a silent (or saturated) network


def _delayed_none(width: int) -> snn.Leaky:
    lif = zero_reset()(width)
    lif.reset_mechanism_val.fill_(2)  # as loading a checkpoint's buffer would
    return lif


class Shifted(SpikingDenoiser):
    def forward(self, x, k, obs):
        return super().forward(x, k, obs) + 1.0


@pytest.mark.parametrize(("make", "needle"), [
    (lambda w: snn.Leaky(beta=0.9), "its reset is 'subtract'"),
    (lambda w: snn.Leaky(beta=0.9, reset_mechanism="zero"), "reset_delay is set"),
    (lambda w: snn.Leaky(beta=0.9, reset_mechanism="none", reset_delay=False),
     "its reset is 'none'"),
    (_delayed_none, "its reset is 'none'"),
    (lambda w: snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero", reset_delay=False),
     "it is snntorch._neurons.synaptic.Synaptic"),
    (zero_reset(graded_spikes_factor=2.0), "graded_spikes_factor is [2.0]"),
    (zero_reset(inhibition=True), "inhibition is set"),
    (zero_reset(spike_grad=torch.sigmoid), "spike_grad forward is not the Heaviside step"),
    (lambda w: snn.Leaky(beta=torch.linspace(0.8, 0.9, w), reset_mechanism="zero",
                         reset_delay=False), "beta differs across neurons"),
    (zero_reset(threshold=-1.0), "threshold must be"),
])
def test_unsupported_neurons_are_refused_by_name(tiny_runs: dict[str, Path], make,
                                                 needle: str) -> None:
    with pytest.raises(UnsupportedNetwork, match="cannot compile denoiser.lifs.0: ") as err:
        export_policy(with_lifs(tiny_runs["sdp"], make))
    assert needle in str(err.value) and "supported: snntorch.Leaky" in str(err.value)


def test_other_layouts_are_refused_by_name(tiny_runs: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedNetwork, match="betas .* one beta for every population"):
        export_policy(with_lifs(tiny_runs["sdp"], zero_reset(0.8), zero_reset(0.9)))
    policy = load(tiny_runs["sdp"])
    policy.denoiser.obs_encoder[1] = nn.Tanh()
    with pytest.raises(UnsupportedNetwork, match="obs_encoder: it is Linear, Tanh, Linear"):
        export_policy(policy)
    policy = load(tiny_runs["sdp"])
    policy.denoiser.__class__ = Shifted
    with pytest.raises(UnsupportedNetwork, match="it is Shifted, not spikeflight's"):
        export_policy(policy)


def test_cli_refuses_a_checkpoint_with_foreign_neuron_tensors(tiny_runs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    private_key, _ = save_keypair(tmp_path / "k")
    run = tmp_path / "synaptic"
    shutil.copytree(tiny_runs["sdp"], run)
    weights = load_file(run / "policy.safetensors")
    weights["denoiser.lifs.0.alpha"] = torch.tensor(0.8)
    save_file(weights, run / "policy.safetensors")
    out = tmp_path / "x.sfimg"
    res = subprocess.run([sys.executable, "-m", "tools.cli", "compile", str(run), "-k",
                          str(private_key), "-o", str(out)], capture_output=True, text=True,
                         timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert 'Unexpected key(s) in state_dict: "denoiser.lifs.0.alpha"' in lines[0]
    assert not out.exists()
