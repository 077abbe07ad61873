"""Export: a trained ``DiffusionPolicy`` (snnTorch) -> NIR graph + host-side arrays.

Our own exporter (snnTorch 1.0's ``export_to_nir`` drops the reset mode and fails on
scalar parameters). The NIR graph holds the denoiser's network as
trained, thresholds unfolded:

    x (A) --Affine w_in--> lif1 <-- cond (H1)        cond = c * g_t + e_k, graded, per step
    lif1 --Affine--> lif2 ... lifL --Affine readout--> eps (A)

NIR's LIF is continuous (tau dv/dt = v_leak - v + R I); the discrete snnTorch update
v[t] = beta v[t-1] + I[t] is its forward-Euler step with ``dt / tau = 1 - beta`` and
``R = 1 / (1 - beta)``, which node metadata records together with ``dt`` (one
micro-step), the reset (to zero, in the same step: ``reset_delay`` false), the number of
micro-steps and that the readout is averaged over them. The ANN twin has no spiking
nodes; NIR has no ReLU, so its Affine nodes carry ``activation: relu`` in metadata (our
extension). Everything else the policy needs (normalisers, observation encoder, SDLI
latency map, state readout, step-embedding table, diffusion schedule) goes into ``host``
arrays, which
the compiler puts into the image beside the graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from compiler.neurons import lif_params
from policies.policy import DiffusionPolicy

DT = 1.0  # one micro-step


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy().copy()


@dataclass
class Exported:
    graph: nir.NIRGraph
    host: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _lif(beta: float, theta: np.ndarray, micro_steps: int) -> nir.LIF:
    n = theta.shape[0]
    return nir.LIF(tau=np.full(n, DT / (1.0 - beta)), r=np.full(n, 1.0 / (1.0 - beta)),
                   v_leak=np.zeros(n), v_threshold=theta.astype(np.float64),
                   v_reset=np.zeros(n),
                   metadata={"dt": DT, "beta": beta, "reset": "zero", "reset_delay": False,
                             "micro_steps": micro_steps,
                             "discretisation": "v[t] = beta v[t-1] + I[t]"})


def _affine(layer: torch.nn.Linear, **metadata: Any) -> nir.Affine:
    return nir.Affine(weight=_np(layer.weight), bias=_np(layer.bias), metadata=metadata)


def export_policy(policy: DiffusionPolicy) -> Exported:
    """NIR graph of the denoiser and the host-side arrays of ``policy``, neuron
    parameters read from its trained modules (``compiler.neurons``, which refuses what
    cannot be compiled)."""
    cfg, den = policy.cfg, policy.denoiser
    snn = policy.spiking
    lif = lif_params(policy)
    h1, a = cfg.hidden[0], cfg.action_size
    act = {} if snn is not None else {"activation": "relu"}
    nodes: dict[str, nir.NIRNode] = {
        "x": nir.Input(input_type={"input": np.array([a])},
                       metadata={"role": "noisy action chunk x_k (normalised)"}),
        "cond": nir.Input(input_type={"input": np.array([h1])},
                          metadata={"role": "state current c * g_t plus step embedding e_k",
                                    "graded": True}),
        "w_in": _affine(den.input),
    }
    edges = [("x", "w_in")]
    populations = [f"lif{i + 1}" for i in range(len(cfg.hidden))]
    for i, name in enumerate(populations):
        if snn is not None:
            nodes[name] = _lif(lif.beta, lif.thresholds[i], cfg.micro_steps)
        else:
            nodes[name] = nir.Affine(weight=np.eye(cfg.hidden[i]), bias=np.zeros(cfg.hidden[i]),
                                     metadata={"activation": "relu"})
        src = "w_in" if i == 0 else f"dense{i}"
        edges.append((src, name))
        if i == 0:
            edges.append(("cond", name))
        if i + 1 < len(cfg.hidden):
            nodes[f"dense{i + 1}"] = _affine(den.hidden[i], **act)
            edges.append((name, f"dense{i + 1}"))
    nodes["readout"] = _affine(den.readout, readout="mean over micro-steps" if snn else "dense")
    nodes["eps"] = nir.Output(output_type={"output": np.array([a])})
    edges += [(populations[-1], "readout"), ("readout", "eps")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "producer": "spikeflight", "kind": cfg.kind, "micro_steps": cfg.micro_steps,
        "dt": DT, "reset": "zero", "reset_delay": False})

    enc1, enc2 = den.obs_encoder[0], den.obs_encoder[2]
    with torch.no_grad():  # in float64, as the conformance check evaluates the model
        table = _np(copy.deepcopy(den.step_embedding).double()(
            torch.arange(cfg.diffusion_steps)))
    host = {"obs_lo": _np(policy.obs_norm.lo), "obs_hi": _np(policy.obs_norm.hi),
            "act_lo": _np(policy.act_norm.lo), "act_hi": _np(policy.act_norm.hi),
            "enc_w1": _np(enc1.weight), "enc_b1": _np(enc1.bias),
            "enc_w2": _np(enc2.weight), "enc_b2": _np(enc2.bias),
            "step_table": table,
            "betas": _np(policy.schedule.betas), "alpha_bars": _np(policy.schedule.alpha_bars)}
    meta: dict[str, Any] = {"kind": cfg.kind, "obs_dim": cfg.obs_dim, "act_dim": cfg.act_dim,
                            "chunk": cfg.chunk, "micro_steps": cfg.micro_steps,
                            "lif_beta": lif.beta if lif else cfg.lif_beta,
                            "diffusion_steps": cfg.diffusion_steps,
                            "prediction": cfg.prediction,
                            "action_frame": cfg.action_frame, "frame_rot6": cfg.frame_rot6}
    if den.state_readout is not None:
        host["state_w"] = _np(den.state_readout.weight)
    if snn is not None and snn.sdli is not None:
        host["sdli_w"], host["sdli_b"] = _np(snn.sdli.latency.weight), _np(snn.sdli.latency.bias)
        meta.update(sdli_sigma=float(snn.sdli.sigma), sdli_beta=float(snn.sdli.beta),
                    sdli_invert=bool(snn.sdli.invert))
    return Exported(graph=graph, host=host, meta=meta)


def write_nir(path: Path, graph: nir.NIRGraph) -> None:
    nir.write(str(path), graph)


def read_nir(path: Path) -> nir.NIRGraph:
    return nir.read(str(path))
