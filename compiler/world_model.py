"""Packing the student world model into a policy image (``compile --world-model RUN``).

The student (``policies.world_model_student``) becomes one ONNX float64 graph,
``world_model.onnx``: inputs ``obs`` (B, obs_dim) and ``actions`` (B, H * act_dim), the
next H actions flattened in time order; outputs ``next_obs`` (B, obs_dim) and
``p_success`` (B,). The normalisers are folded into affine constants: ``N(x) = a x + b``
with ``a = 2 / span``, ``b = -2 lo / span - 1`` (``a = b = 0`` where a range is below
``MIN_RANGE``) and ``N_d^-1(y) = y span / 2 + span / 2 + lo``. Conformance: the graph
against the student in float64 on observations from the calibration states and actions
drawn uniformly over the action range; the largest difference must stay below
``WM_TOL``.

Calibration on nominal episodes of the task's expert (``CALIB_EPISODES``) and of the
policy itself (``POLICY_EPISODES``, flown by the compiled float network with the first
operating point's replanning: the guard must not cry wolf at what the policy does when
nothing is wrong), in the student's normalised observation units, of what the runtime
guard (``runtime.world_model``) checks:

- anomaly: every ``H`` steps the error ``e = sqrt(mean((c (s_hat - s))^2))`` of the
  prediction of ``s_t`` from ``s_t-H`` and the H actions executed since, with ``c`` the
  student's normalisation scale ``2 / span`` except on the flags (dimensions that are
  only ever 0 or 1 in the calibration episodes: grasped, locked, ...), whose switching
  instant no model times and which are left out (``c = 0``); the statistic is the mean of
  the last ``WINDOW`` errors, and the threshold is ``THRESHOLD_FACTOR`` x its largest
  value over the calibration episodes;
- envelope: for every velocity field of the observation (names ending in ``vel``) the
  largest speed (Euclidean norm of the field; m/s or rad/s as the field is documented)
  over the calibration episodes, times ``ENVELOPE_FACTOR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from compiler.calibrate import expert_episodes
from compiler.onnx_builder import GraphBuilder, model, value
from hardware.energy import CMOS45
from hardware.sim.layout import obs_fields
from policies.normalize import MIN_RANGE
from policies.world_model_distill import load_student
from policies.world_model_student import StudentWorldModel

WM_TOL = 1e-9
CALIB_EPISODES = 10
POLICY_EPISODES = 5
WINDOW = 3
THRESHOLD_FACTOR = 1.5
ENVELOPE_FACTOR = 1.5


def _affine(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    span = hi - lo
    ok = span > MIN_RANGE
    safe = np.where(ok, span, 1.0)
    return np.where(ok, 2.0 / safe, 0.0), np.where(ok, -2.0 * lo / safe - 1.0, 0.0)


def build_student_graph(student: StudentWorldModel) -> onnx.ModelProto:
    """The student as an ONNX float64 graph (module docstring)."""
    cfg, f = student.cfg, np.float64
    b = GraphBuilder()

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    a_s, b_s = _affine(arr(student.obs_norm.lo), arr(student.obs_norm.hi))
    a_a, b_a = _affine(arr(student.act_norm.lo), arr(student.act_norm.hi))
    z_obs = b.op("Add", b.op("Mul", "obs", b.const(a_s, f)), b.const(b_s, f))
    z_act = b.op("Add", b.op("Mul", "actions", b.const(np.tile(a_a, cfg.horizon), f)),
                 b.const(np.tile(b_a, cfg.horizon), f))
    h = b.op("Concat", z_obs, z_act, axis=1)
    linears = [m for m in student.net if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        h = b.op("Add", b.op("MatMul", h, b.transposed(arr(lin.weight), f)),
                 b.const(arr(lin.bias), f))
        if i < len(linears) - 1:
            h = b.op("Relu", h)
    d = cfg.obs_dim
    mu = b.op("Slice", h, b.const([0], np.int64), b.const([d], np.int64),
              b.const([1], np.int64))
    logit = b.op("Slice", h, b.const([d], np.int64), b.const([d + 1], np.int64),
                 b.const([1], np.int64))
    lo, hi = arr(student.delta_norm.lo), arr(student.delta_norm.hi)
    span = hi - lo
    ok = span > MIN_RANGE
    scale, shift = np.where(ok, span / 2, 0.0), np.where(ok, span / 2 + lo, lo)
    delta = b.op("Add", b.op("Mul", mu, b.const(scale, f)), b.const(shift, f))
    b.op("Add", "obs", delta, name="next_obs")
    b.op("Squeeze", b.op("Sigmoid", logit), b.const([1], np.int64), name="p_success")
    graph = b.graph("world_model", [value("obs", f, ["B", d]),
                                    value("actions", f, ["B", cfg.horizon * cfg.act_dim])],
                    [value("next_obs", f, ["B", d]), value("p_success", f, ["B"])])
    return model(graph, "spikeflight student world model")


def _session(graph: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(graph.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def conformance(student: StudentWorldModel, graph: onnx.ModelProto, states: np.ndarray,
                seed: int = 0) -> dict[str, Any]:
    """The graph against the student in float64 on ``states`` and uniform actions."""
    cfg = student.cfg
    rng = np.random.default_rng(seed)
    lo, hi = student.act_norm.lo.double().numpy(), student.act_norm.hi.double().numpy()
    acts = rng.uniform(lo, hi, size=(len(states), cfg.horizon, cfg.act_dim))
    sess = _session(graph)
    nxt, p = sess.run(None, {"obs": states, "actions": acts.reshape(len(states), -1)})
    ref = StudentWorldModel(cfg).double()
    ref.load_state_dict({k: v.double() for k, v in student.state_dict().items()})
    with torch.no_grad():
        r_nxt, r_p = ref(torch.as_tensor(states), torch.as_tensor(acts))
    err = max(float(np.abs(nxt - r_nxt.numpy()).max()), float(np.abs(p - r_p.numpy()).max()))
    return {"samples": len(states), "max_abs_error": err, "tolerance": WM_TOL}


def velocity_fields(layout: list[Any]) -> list[Any]:
    return [f for f in layout if f.name.endswith("vel")]


def policy_episodes(policy: Any, task: str, episodes: int, execute: int,
                    seed: int = 80_000) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observations (L + 1, obs_dim), actions (L, act_dim)) of nominal episodes flown by
    ``policy`` (``compiler.closed_loop.CompiledPolicy``), ``execute`` actions per chunk."""
    from hardware.sim.registry import make_env

    env = make_env(task)
    gen = torch.Generator().manual_seed(seed)
    out = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            seq, acts, done = [np.asarray(obs, np.float64)], [], False
            while not done:
                for a in policy.act(obs, generator=gen)[0][:execute]:
                    acts.append(np.asarray(a, np.float64))
                    obs, _, term, trunc, _ = env.step(acts[-1])
                    seq.append(np.asarray(obs, np.float64))
                    done = term or trunc
                    if done:
                        break
            out.append((np.asarray(seq), np.asarray(acts)))
    finally:
        env.close()
    return out


def calibrate(student: StudentWorldModel, graph: onnx.ModelProto, task: str,
              episodes: int = CALIB_EPISODES, seed: int = 90_000,
              flown: list[tuple[np.ndarray, np.ndarray]] = ()) -> dict[str, Any]:
    """Anomaly threshold and velocity envelope from nominal expert episodes and the
    ``flown`` nominal episodes of the policy itself (module docstring)."""
    from hardware.sim.registry import make_env

    h = student.cfg.horizon
    sess = _session(graph)
    runs = expert_episodes(task, episodes, seed) + list(flown)
    every = np.concatenate([o for o, _ in runs])
    binary = np.all((every == 0.0) | (every == 1.0), axis=0)
    a_s, _ = _affine(student.obs_norm.lo.double().numpy(), student.obs_norm.hi.double().numpy())
    scale = np.where(binary, 0.0, a_s)
    stats: list[float] = []
    for obs, acts in runs:
        starts = np.arange(0, len(acts) - h + 1, h)
        if not len(starts):
            continue
        pred = sess.run(None, {"obs": obs[starts], "actions": np.stack(
            [acts[t:t + h].reshape(-1) for t in starts])})[0]
        errors = np.sqrt(np.mean(((pred - obs[starts + h]) * scale) ** 2, axis=1))
        stats += [float(np.mean(errors[i - WINDOW + 1:i + 1]))
                  for i in range(WINDOW - 1, len(errors))]
    if not stats:
        raise ValueError(f"calibration episodes of {task} are shorter than "
                         f"{WINDOW * h} steps")
    env = make_env(task)
    fields = velocity_fields(obs_fields(env) or [])  # none published: no envelope
    env.close()
    envelope = [{"field": f.name, "start": f.start, "size": f.size, "limit": ENVELOPE_FACTOR
                 * float(np.linalg.norm(every[:, f.slice], axis=1).max())} for f in fields]
    return {"episodes": episodes, "policy_episodes": len(flown), "window": WINDOW,
            "statistic_max": max(stats),
            "threshold": THRESHOLD_FACTOR * max(stats), "envelope": envelope,
            "error_scale": scale.tolist()}


def pack_world_model(run: Path, task: str, obs_dim: int, act_dim: int, states: np.ndarray,
                     seed: int = 0, flown: Any = None
                     ) -> tuple[bytes, dict[str, Any], list[str]]:
    """(graph bytes, manifest entry, conformance failures) for the student at ``run``;
    ``flown()``: the policy's own nominal episodes for the calibration (see
    ``policy_episodes``), called only once the student fits the policy."""
    student, cfg = load_student(run)
    failures = []
    if cfg["task"] != task or student.cfg.obs_dim != obs_dim or student.cfg.act_dim != act_dim:
        return b"", {}, [f"world model {run} is for {cfg['task']!r} ({student.cfg.obs_dim} "
                         f"observation, {student.cfg.act_dim} action values), the policy for "
                         f"{task!r} ({obs_dim}, {act_dim})"]
    graph = build_student_graph(student)
    check = conformance(student, graph, states, seed)
    if check["max_abs_error"] > WM_TOL:
        failures.append(f"world model ONNX vs torch: {check['max_abs_error']:.3g} > {WM_TOL}")
    entry = {"kind": "student", "teacher": cfg.get("teacher", ""), "horizon": student.cfg.horizon,
             "obs_dim": obs_dim, "act_dim": act_dim,
             "parameters": student.parameters_count(), "macs": student.macs(),
             "energy_j": CMOS45.ann_joules(student.macs()), "energy_source": CMOS45.name,
             "conformance": check,
             **calibrate(student, graph, task, flown=flown() if flown else ())}
    return graph.SerializeToString(), entry, failures
