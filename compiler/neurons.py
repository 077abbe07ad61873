"""What the compiler reads from a trained network's own modules, and what it refuses.

The exporter takes every neuron parameter from the modules as trained (their parameters
and buffers, after a checkpoint is loaded), never from ``config.json``:

- ``beta``: the stored value (a float32 0.9 is 0.89999998..., and the compiled network
  uses exactly that), one value per population and the same for every population (Lava's
  LIF shares ``du``/``dv`` across a process and the folded network has one beta);
- ``threshold``: per channel, or one value broadcast to every channel; positive;
- the reset: snnTorch ``Leaky`` with ``reset_mechanism`` zero and ``reset_delay`` false,
  i.e. v <- 0 in the same micro-step as the spike (Lava's LIF), checked on the buffer
  ``reset_mechanism_val`` *and* on the state function the module actually runs;
- spikes of height 1 (``graded_spikes_factor`` 1) from a Heaviside ``spike_grad``
  forward (v > theta fires; surrogates change only the gradient).

Anything else (another neuron class, subtract or no reset, a delayed reset, lateral
inhibition, state quantisation, hidden-state mode, graded spike heights, per-neuron beta,
a denoiser or encoder with other layers than spikeflight's layout) is refused in one
line that names the module and says what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import snntorch as snn
import torch
from torch import nn

from hardware.errors import SpikeflightError
from policies.denoiser import AnnDenoiser, SpikingDenoiser
from policies.policy import DiffusionPolicy
from policies.sdli import SdliGate

SUPPORTED = "snntorch.Leaky with reset_mechanism='zero', reset_delay=False"
RESETS = {0: "subtract", 1: "zero", 2: "none"}


class UnsupportedNetwork(SpikeflightError):
    """A trained network with a module or setting the compiler cannot reproduce."""


@dataclass(frozen=True)
class LifParams:
    """The neuron parameters of the spiking populations, as trained."""

    beta: float  # membrane decay per micro-step, v <- beta v + I
    thresholds: list[np.ndarray]  # per population, one value per channel (float64)


def _refuse(name: str, what: str) -> UnsupportedNetwork:
    return UnsupportedNetwork(f"cannot compile {name}: {what}; supported: {SUPPORTED}")


def _heaviside(lif: snn.Leaky) -> bool:
    probe = torch.tensor([-1e-3, 0.0, 1e-3, 5.0])
    with torch.no_grad():
        out = lif.spike_grad(probe)
    return torch.equal(out.float(), torch.tensor([0.0, 0.0, 1.0, 1.0]))


def _population(name: str, lif: nn.Module, width: int) -> tuple[float, np.ndarray]:
    """(beta, thresholds) of one population, or the reason it cannot be compiled."""
    if type(lif) is not snn.Leaky:
        raise _refuse(name, f"it is {type(lif).__module__}.{type(lif).__qualname__}")
    reset = RESETS.get(int(lif.reset_mechanism_val), str(int(lif.reset_mechanism_val)))
    if reset != "zero" or getattr(lif.state_function, "__func__", None) is not \
            snn.Leaky._base_zero:
        raise _refuse(name, f"its reset is {reset!r} (Lava's LIF resets to zero; a subtract "
                      "or no reset needs a custom process model)")
    for flag, why in (("reset_delay", "a delayed reset (snnTorch's default) acts one "
                       "micro-step after the spike"), ("inhibition", "lateral inhibition"),
                      ("init_hidden", "hidden-state mode"), ("state_quant",
                                                             "state quantisation")):
        if getattr(lif, flag):
            raise _refuse(name, f"{flag} is set ({why})")
    factor = lif.graded_spikes_factor.detach().double().flatten()
    if not torch.all(factor == 1.0):
        raise _refuse(name, f"graded_spikes_factor is {factor.tolist()} (spikes of height 1 "
                      "only)")
    if not _heaviside(lif):
        raise _refuse(name, "its spike_grad forward is not the Heaviside step v > threshold")
    beta = lif.beta.detach().double().flatten()
    if beta.numel() != 1 and not torch.all(beta == beta[0]):
        raise _refuse(name, "its beta differs across neurons (Lava's LIF shares one decay "
                      "per population)")
    b = float(beta[0])
    if not 0.0 < b <= 1.0:
        raise _refuse(name, f"its beta {b} is outside (0, 1]")
    theta = lif.threshold.detach().double().flatten().numpy()
    if theta.size == 1:
        theta = np.full(width, float(theta[0]))
    if theta.size != width or not (np.isfinite(theta).all() and (theta > 0).all()):
        raise _refuse(name, f"its threshold must be {width} positive finite values (or one), "
                      f"got {theta.size} values, minimum {float(theta.min()):g}")
    return b, theta


def _check_layout(policy: DiffusionPolicy) -> None:
    den, name = policy.denoiser, "denoiser"
    if type(den) not in (SpikingDenoiser, AnnDenoiser):
        raise UnsupportedNetwork(f"cannot compile {name}: it is {type(den).__qualname__}, not "
                                 "spikeflight's SpikingDenoiser or AnnDenoiser layout")
    enc = den.obs_encoder
    kinds = [type(m) for m in enc] if isinstance(enc, nn.Sequential) else [type(enc)]
    if kinds != [nn.Linear, nn.ReLU, nn.Linear]:
        raise UnsupportedNetwork(f"cannot compile {name}.obs_encoder: it is "
                                 f"{', '.join(k.__name__ for k in kinds)}; supported: "
                                 "Linear, ReLU, Linear")
    linears = {"input": den.input, "readout": den.readout,
               **{f"hidden.{i}": m for i, m in enumerate(den.hidden)}}
    for sub, module in linears.items():
        if type(module) is not nn.Linear or module.bias is None:
            raise UnsupportedNetwork(f"cannot compile {name}.{sub}: it is "
                                     f"{type(module).__qualname__}; supported: nn.Linear "
                                     "with bias")
    gate = getattr(den, "sdli", None)
    if gate is not None and type(gate) is not SdliGate:
        raise UnsupportedNetwork(f"cannot compile {name}.sdli: it is "
                                 f"{type(gate).__qualname__}; supported: spikeflight's SdliGate")


def lif_params(policy: DiffusionPolicy) -> LifParams | None:
    """The trained neuron parameters (None for the ANN twin); ``UnsupportedNetwork`` for
    anything the compiler cannot reproduce exactly."""
    _check_layout(policy)
    snn_den = policy.spiking
    if snn_den is None:
        return None
    betas, thetas = [], []
    for i, (lif, width) in enumerate(zip(snn_den.lifs, policy.cfg.hidden, strict=True)):
        b, theta = _population(f"denoiser.lifs.{i}", lif, width)
        betas.append(b)
        thetas.append(theta)
    if len(set(betas)) > 1:
        raise UnsupportedNetwork(f"cannot compile the populations' betas {betas}: the folded "
                                 "network has one beta for every population")
    return LifParams(beta=betas[0], thresholds=thetas)
