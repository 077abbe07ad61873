"""The compile pipeline: checkpoint -> NIR -> passes -> backends -> conformance -> signed image.

``compile_policy`` does everything in memory and returns the image bytes (and the NIR
graph, which the image does not carry: nothing on board reads it; ``spikeflight compile
--nir`` writes it); nothing is written unless every hardware limit holds and every
conformance check passes (the CLI then writes the image atomically). An image carries
what the device reads, plus the conformance vectors. Sections per target:

| target    | primary backend      | sections besides net.npz, golden.npz, selftest.npz  |
|-----------|----------------------|-----------------------------------------------------|
| loihi2    | Lava (Loihi2 sim/hw) | core.npz, chunk_fixed.onnx, chunk.onnx, tensors.bin |
| cpu-fixed | ONNX fixed point     | core.npz, chunk_fixed.onnx, tensors.bin             |
| cpu       | ONNX float           | chunk.onnx, step.onnx                               |

- ``net.npz``: the folded float network (``FoldedNet.to_arrays``, float64) with the
  schedule (``betas``, ``alpha_bars``) and the action range (``act_lo``, ``act_hi``);
  uncompressed, as the graphs' float weights are its arrays (see ``tensors.bin``).
- ``core.npz``: the fixed-point core (``FixedCore.to_arrays``: int32 per-neuron
  parameters, int16 weight mantissas), uncompressed likewise.
- ``chunk.onnx`` / ``chunk_fixed.onnx``: a whole action chunk per call, float or fixed
  point (``compiler/onnx_chunk.py``), what the ONNX backends run; ``step.onnx`` (cpu): one
  micro-step with explicit state (``compiler/onnx_float.py``). The evaluation and core
  graphs (``eval.onnx``, ``eval_fixed.onnx``, ``core.onnx``) drive the conformance checks
  here and are not in the image.
- ``tensors.bin``: the graphs' large tensors that are none of the network's arrays (the
  fixed-point graphs' int64 per-neuron constants), each once; the graphs refer to their
  large tensors as ONNX external data, in ``net.npz`` / ``core.npz`` or here
  (``compiler/tensor_store.py``), so each weight is stored once. Absent when empty.
- ``golden.npz``: the golden evaluations' inputs, their eps through the evaluation graphs
  and Lava's spike rasters (``runtime/golden.py``: rasters bit-packed, graded inputs
  recomputed rather than stored, deflated) for conformance off the compile host.
- ``world_model.onnx`` (with ``--world-model``): the distilled student world model as
  one float64 graph (``compiler/world_model.py``), its calibration in the manifest.
- ``selftest.npz``: golden whole chunks of the target's chunk graphs
  (``compiler/selftest_vectors.py``) for the device's self-test before it reports an
  image as running.

The manifest holds the operating points (DDIM step subsets with their predicted energy
per chunk and the closed-loop success measured on the ground with the target's
arithmetic), the conformance results, the compile report and the mapping.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler import conformance as conf
from compiler.calibrate import expert_states, record_denoising
from compiler.closed_loop import Background, CompiledPolicy, ground_success
from compiler.export import export_policy, write_nir
from compiler.fold import fold
from compiler.mapping import map_cores
from compiler.onnx_chunk import build_chunk
from compiler.onnx_fixed import build_core
from compiler.onnx_fixed import build_eval as build_fixed_eval
from compiler.onnx_float import build_eval, build_step
from compiler.quantize import Violation, quantize_net, sort_by_weight_scale
from compiler.screening import screening_points
from compiler.selftest_vectors import selftest_vectors
from compiler.tensor_store import share_tensors
from compiler.world_model import POLICY_EPISODES, pack_world_model, policy_episodes
from hardware.errors import SpikeflightError
from hardware.loihi2 import LOIHI2, Loihi2Limits
from policies.checkpoint import load_policy
from policies.config import PolicyConfig
from policies.ops import energy_per_chunk
from runtime.backends import TENSOR_STORE
from runtime.fixed_point import FixedCore
from runtime.golden import GOLDEN, golden_bytes
from runtime.image import TARGETS, arrays_to_bytes, pack_image
from runtime.lava_core import hardware_status
from runtime.manifest import MAX_CANDIDATES
from runtime.network import FoldedNet
from runtime.sampler import Sampler
from runtime.selftest import SELFTEST
from runtime.world_model import WM_SECTION

FORMAT_NOTE = "spikeflight policy image"
Stage = Callable[[str], None]


class CompileError(SpikeflightError):
    """The policy cannot be compiled for the target; the message lists every reason."""


@dataclass
class CompileOptions:
    target: str = "loihi2"
    groups: int = 8  # LIF processes per population 2..L
    golden: int = 128  # golden evaluations
    calib_episodes: int = 4
    float_samples: int = 1000  # observations x noise seeds for ONNX float vs torch
    seed: int = 0
    # (DDIM steps or None for DDPM over all K, actions executed per chunk or None for all)
    operating_points: tuple[tuple[int | None, int | None], ...] = (
        (None, 2), (None, None), (10, None), (5, None), (3, None))
    ground_episodes: int = 20  # closed-loop episodes per operating point
    world_model: Path | None = None  # a distilled student run to pack beside the policy
    world_model_episodes: int = POLICY_EPISODES  # the policy's own calibration flights
    screen: int = 1  # > 1: a screening twin of every point (compiler.screening)
    version: str = "0.1.0"
    security_counter: int = 0
    limits: Loihi2Limits = field(default_factory=lambda: LOIHI2)


@dataclass
class CompileResult:
    image: bytes
    manifest: dict[str, Any]
    report: list[dict[str, Any]]
    nir: bytes = b""  # the policy's NIR graph (not in the image: nothing on board reads it)
    stage_seconds: list[tuple[str, float]] = field(default_factory=list)  # wall s per stage


def _violations_error(violations: list[Violation]) -> CompileError:
    lines = "; ".join(str(v) for v in violations)
    return CompileError(f"{len(violations)} hardware limit violation(s): {lines}")


def _nir_bytes(graph: Any) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.nir"
        write_nir(path, graph)
        return path.read_bytes()


def _checkpoint_digest(run_dir: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "policy.safetensors"):
        h.update((run_dir / name).read_bytes())
    return h.hexdigest()


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch and the BLAS libraries on one thread for the length of a compile: its work
    is many small products, and on a machine whose other core is busy a second thread
    makes each of them wait for the slower one (measured: 14 s -> 2.8 s for one operating
    point's 20 ground episodes, 26 s -> 3 s for the float conformance)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def compile_policy(checkpoint: Path, options: CompileOptions, key: Ed25519PrivateKey,
                   on_stage: Stage | None = None) -> CompileResult:
    """Compile ``checkpoint`` (a run directory) for ``options.target``; raises
    ``CompileError`` listing every limit violation or failed conformance check. The
    result's ``stage_seconds`` hold the wall time of every stage, in order."""
    timings: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def stage(msg: str) -> None:
        now = time.perf_counter()
        if timings:
            timings[-1] = (timings[-1][0], now - last[0])
        timings.append((msg, 0.0))
        last[0] = now
        if on_stage is not None:
            on_stage(msg)

    with _one_thread(), ExitStack() as cleanup:  # a failed compile stops its worker
        result = _compile(checkpoint, options, key, stage, cleanup)
    stage("done")
    result.stage_seconds = timings[:-1]
    return result


def _compile(checkpoint: Path, options: CompileOptions, key: Ed25519PrivateKey,
             stage: Stage, cleanup: ExitStack) -> CompileResult:
    if options.target not in TARGETS:
        raise CompileError(f"--target must be one of {', '.join(TARGETS)}, "
                           f"got {options.target!r}")
    if not 1 <= options.screen <= MAX_CANDIDATES:
        raise CompileError(f"--screen must be in 1..{MAX_CANDIDATES}, got {options.screen}")
    if options.screen > 1 and options.world_model is None:
        raise CompileError("--screen needs --world-model: the world model screens the "
                           "candidates")
    policy, saved = load_policy(checkpoint)
    policy.eval()
    task = saved["task"]
    spiking = policy.spiking is not None
    if not spiking and options.target != "cpu":
        raise CompileError(f"{checkpoint} holds an ANN twin (no spiking core): compile it "
                           "with --target cpu")
    k_max, chunk = policy.cfg.diffusion_steps, policy.cfg.chunk
    bad = [n for n, _ in options.operating_points if n is not None and not 1 <= n <= k_max]
    if bad:
        raise CompileError(f"operating points: DDIM step counts must be in 1..{k_max}, got {bad}")
    bad = [r for _, r in options.operating_points if r is not None and not 1 <= r <= chunk]
    if bad:
        raise CompileError(f"operating points: actions per chunk must be in 1..{chunk}, got {bad}")
    stage("export to NIR and fold")
    exported = export_policy(policy)
    net = fold(exported)
    if spiking:
        net = sort_by_weight_scale(net)
    sampler = Sampler(exported.host["betas"], exported.host["alpha_bars"],
                      exported.meta["prediction"])
    stage(f"calibrate on {options.calib_episodes} expert episodes of {task}")
    states = expert_states(task, options.calib_episodes)
    calib = record_denoising(net, sampler, states, options.seed)
    golden = calib.subset(options.golden)
    current = net.first_layer_current(calib.x, calib.k, calib.obs)
    quant = None
    if spiking and options.target != "cpu":  # limits first: fail fast, with every reason
        stage("quantize to Loihi 2 fixed point and map to cores")
        quant = quantize_net(net, current, options.limits, groups=options.groups)
        maps, structural = map_cores(net.widths, [p.groups for p in quant.core.populations],
                                     options.limits)
        if quant.violations or structural:
            raise _violations_error(quant.violations + structural)
    # the ground episodes need only the folded (and quantised) network: they fly in a
    # worker while the graphs are built and checked here; with --screen the image itself
    # flies them later (compiler.screening), so none fly here
    ground = None if options.screen > 1 else cleanup.enter_context(Background(
        ground_runs, policy.cfg, task, net, sampler, exported.host,
        quant.core if quant else None, options))

    arrays, scalars = net.to_arrays()
    arrays.update({name: exported.host[name] for name in ("betas", "alpha_bars",
                                                          "act_lo", "act_hi")})
    sections = {"net.npz": arrays_to_bytes(arrays)}
    manifest: dict[str, Any] = {
        "format": FORMAT_NOTE, "task": task, "kind": exported.meta["kind"],
        "target": options.target, "policy": exported.meta, "net": scalars,
        "checkpoint_sha256": _checkpoint_digest(Path(checkpoint)),
    }
    stage("build ONNX float graphs")
    float_eval = build_eval(net, np.float64)
    float_sess = conf.session(float_eval)
    if options.target in ("cpu", "loihi2"):
        sections["chunk.onnx"] = build_chunk(
            net, prediction=exported.meta["prediction"]).SerializeToString()
    if options.target == "cpu" and spiking:
        sections["step.onnx"] = build_step(net, np.float64).SerializeToString()
    stage(f"conformance: ONNX float vs torch on {options.float_samples} chunks")
    checks: dict[str, Any] = {"onnx_float_vs_torch": conf.float_vs_torch(
        policy, float_sess, sampler, options.float_samples, options.seed)}
    failures = []
    if checks["onnx_float_vs_torch"]["max_abs_error"] > conf.FLOAT_TOL:
        failures.append(f"ONNX float vs torch: max action error "
                        f"{checks['onnx_float_vs_torch']['max_abs_error']:.3g} > {conf.FLOAT_TOL}")
    golden_arrays = {"obs": golden.obs, "x": golden.x, "k": golden.k,
                     "eps_float": conf.onnx_eps(float_sess, np.float64)(golden.x, golden.k,
                                                                         golden.obs)}
    rates: list[float] = []
    report: list[dict[str, Any]] = []
    if spiking:
        stage("conformance: Lava floating_pt vs ONNX float")
        checks["lava_float_vs_onnx_float"] = conf.lava_float_vs_onnx(net, float_sess, golden)
        counts = net.spike_counts(current)
        rates = [float(c.mean()) / net.micro_steps for c in counts]
    if quant is not None:
        failures += _fixed_point(net, quant, golden, sections, manifest, checks,
                                 golden_arrays, stage)
        stage("conformance: quantized vs float actions")
        qf = conf.quantized_vs_float(net, quant.core, sampler, states, options.seed)
        checks["quantized_vs_float"] = qf
        rates = qf["firing_rates_fixed"]
        report = _report(net, quant, maps, rates, exported.meta["diffusion_steps"])
        manifest["mapping"] = {"cores": sum(m.cores for m in maps),
                               "limits": options.limits.name, "hardware": hardware_status()}
    wm_graph = b""
    if options.world_model is not None:
        stage(f"world model: pack {options.world_model}, conformance and calibration")
        flier = CompiledPolicy(policy.cfg, net, sampler, exported.host["act_lo"],
                               exported.host["act_hi"])
        replan = options.operating_points[0][1] or policy.cfg.chunk
        wm_graph, manifest["world_model"], wm_failures = pack_world_model(
            Path(options.world_model), task, policy.cfg.obs_dim, policy.cfg.act_dim,
            states, options.seed, flown=lambda: policy_episodes(
                flier, task, options.world_model_episodes, replan))
        failures += wm_failures
    if failures:
        raise CompileError("conformance failed: " + "; ".join(failures))
    sections[GOLDEN] = golden_bytes(golden_arrays)
    sections[SELFTEST] = arrays_to_bytes(selftest_vectors(sections, sampler, golden,
                                                          options.seed))
    if ground is not None:
        stage(f"operating points: {options.ground_episodes} ground episodes each (waiting "
              "for the worker)")
    manifest["operating_points"] = operating_points(
        policy.cfg, net, sampler, rates, options,
        ground.result() if ground is not None else [(None, 0)] * len(options.operating_points))
    manifest.update(conformance=checks, report=report,
                    calibration={"states": len(states), "evaluations": len(calib),
                                 "firing_rates": rates,
                                 "energy_per_chunk": energy_per_chunk(policy.cfg, rates)})
    stage("sign and pack")
    graphs, store = share_tensors({n: b for n, b in sections.items() if n.endswith(".onnx")},
                                  {n: sections[n] for n in ("net.npz", "core.npz")
                                   if n in sections})
    sections.update(graphs)
    if store:
        sections[TENSOR_STORE] = store
    if wm_graph:  # small, self-contained: not shared through the tensor store
        sections[WM_SECTION] = wm_graph
    image = pack_image(manifest, sections, target=options.target, version=options.version,
                       security_counter=options.security_counter, private_key=key)
    if options.screen > 1:  # measured by flying the image itself, then signed again
        stage(f"screening: each operating point with and without {options.screen} "
              f"candidates, {options.ground_episodes} runtime episodes each")
        manifest["operating_points"] = screening_points(
            image, key, options.screen, options.ground_episodes,
            lambda name, rate: stage(f"  {name}: ground success {rate:.0%}"))
        image = pack_image(manifest, sections, target=options.target,
                           version=options.version,
                           security_counter=options.security_counter, private_key=key)
    return CompileResult(image=image, manifest=manifest, report=report,
                         nir=_nir_bytes(exported.graph))


def _fixed_point(net: Any, quant: Any, golden: Any, sections: dict[str, bytes],
                 manifest: dict[str, Any], checks: dict[str, Any],
                 golden_arrays: dict[str, np.ndarray], stage: Stage) -> list[str]:
    """Fixed-point sections, golden rasters from Lava and the bit-exactness check;
    returns the failures."""
    core = quant.core
    core_arrays, manifest["core"] = core.to_arrays()
    sections["core.npz"] = arrays_to_bytes(core_arrays)
    core_model = build_core(core, net.micro_steps)
    fixed_eval = build_fixed_eval(net, core)
    sections["chunk_fixed.onnx"] = build_chunk(
        net, core, manifest["policy"]["prediction"]).SerializeToString()
    a_in = conf.golden_inputs(net, core, golden)
    stage(f"conformance: ONNX fixed point vs Lava fixed_pt on {len(golden)} golden evaluations")
    checks["onnx_fixed_vs_lava"], lava = conf.fixed_vs_lava(conf.session(core_model), core,
                                                            a_in)
    golden_arrays["a_in"] = a_in
    for i, r in enumerate(lava):
        golden_arrays[f"spikes{i + 1}"] = r
    golden_arrays["eps_fixed"] = conf.onnx_eps(conf.session(fixed_eval), np.float64)(
        golden.x, golden.k, golden.obs)
    bad = checks["onnx_fixed_vs_lava"]["mismatches"]
    return [f"ONNX fixed point vs Lava fixed_pt: {bad} mismatching spike values"] if bad else []


def ground_runs(cfg: PolicyConfig, task: str, net: FoldedNet, sampler: Sampler,
                host: dict[str, np.ndarray], core: FixedCore | None,
                options: CompileOptions) -> list[tuple[float, int]]:
    """(success rate, episodes) of every operating point over ``ground_episodes``
    held-out episodes, flown by the fixed-point core where there is one."""
    out = []
    for steps, replan in options.operating_points:
        res = ground_success(cfg, task, net, sampler, host["act_lo"], host["act_hi"], core,
                             steps, options.ground_episodes, execute=replan or cfg.chunk)
        out.append((res.success_rate, res.episodes))
    return out


def operating_points(cfg: PolicyConfig, net: FoldedNet, sampler: Sampler, rates: list[float],
                     options: CompileOptions, ground: list[tuple[float | None, int]]
                     ) -> list[dict[str, Any]]:
    """Operating points: DDIM subsets (or full DDPM) x replanning interval, each with its
    predicted cmos45 energy per chunk (calibrated firing rates) and its ``ground`` success
    (``ground_runs``; ``(None, 0)`` where it is measured later). The micro-steps T stay
    those the network was trained with (its thresholds and SDLI gate are learned for that
    T)."""
    points = []
    for (steps, replan), (success, episodes) in zip(options.operating_points, ground,
                                                    strict=True):
        n = steps or sampler.steps
        replan = replan or cfg.chunk
        energy = energy_per_chunk(cfg, rates, n)
        name = (f"ddim{steps}" if steps else f"ddpm{n}") + \
            (f"-r{replan}" if replan != cfg.chunk else "")
        points.append({"name": name, "ddim_steps": steps, "micro_steps": net.micro_steps,
                       "replan": replan, "energy_j": energy["policy_j_per_chunk"],
                       "energy_source": energy["model"], "success_rate": success,
                       "ground_episodes": episodes})
    return points


def _report(net: Any, quant: Any, maps: list, rates: list[float],
            steps: int) -> list[dict[str, Any]]:
    """Per population: neurons, synapses in, weight exponents, cores, firing rate and
    predicted synaptic operations per chunk (rate x T x outgoing synapses x K)."""
    rows = []
    fan_out = [w.shape[0] for w in net.hidden_w] + [net.action_size]
    for i, (m, pop) in enumerate(zip(maps, quant.core.populations, strict=True)):
        exps = sorted({int(e) for e in pop.weight_exp})
        rows.append({"layer": m.name, "neurons": m.neurons, "synapses_in": m.neurons * m.fan_in
                     if i else m.neurons, "weight_exp": exps if i else [],
                     "vth": sorted({int(v) for v in pop.vth}), "groups": len(pop.groups),
                     "cores": m.cores, "firing_rate": rates[i],
                     "weight_rmse": quant.weight_rmse[i - 1] if i else None,
                     "synops_per_chunk": rates[i] * net.micro_steps * m.neurons * fan_out[i]
                     * steps})
    return rows
