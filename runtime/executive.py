"""The onboard executive: the control loop that flies a verified image.

Per chunk, in mission time t = steps x control period:

    op     = governor.choose(t, steps left)          (None: safe mode, hold position)
    x, z   = draws from the episode's seeded generator (runtime.sampler order)
    x0, n  = backend chain .chunk(obs, x, ks_op, coef_op, z)   one call where possible
    chunk  = unnormalise(x0), into the world frame    -> world-model guard -> actuators
    E      = energy of the chunk from its measured spikes n (cmos45-horowitz2014 applied to
             the chunk's phases, runtime.phases), or with a ``reading`` the rail energy a
             replayed board trace holds for the planning tick (runtime.power_reading)

An environment's ``info["budget_scale"]`` (a brown-out) scales the governor's budget from
that step on (``budget_log`` keeps every change). A deadline miss (watchdog) drops the late
chunk and holds position for one control step; an environment whose step reports
``info["replan"]`` (a hardware-in-the-loop link that lost ticks) has the rest of the chunk
dropped and a new one planned on its observation; with ``candidates`` N > 1 the backend
computes N chunks in one call and the first the world model lets through flies (all N
are booked, and the operating points' energies count them), after which the robot holds
position; one that fails the optional ``plausible(chunk, rates)``
check (``runtime.scrubber``) holds position too. Telemetry records per chunk the
channels latency_ms, energy_j, operating_point, backend, firing_rates, governor_state and
phases (``runtime.phases``: per-phase operations and wall times for energy attribution),
and the events (fallback,
deadline_miss, governor_state, safe_mode, world_model_veto, implausible_output, anomaly).
Everything random comes from ``numpy.random.default_rng([seed, 0x5F])`` per episode, so an
episode is deterministic for a given seed and backend arithmetic; screening's extra
candidates draw from a second stream, ``default_rng([seed, 0x5F, 1])``, so that the first
stream is consumed as in an unscreened flight and a screened flight that vetoes nothing
flies the unscreened episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hardware.energy import CMOS45
from hardware.energy_models import MODELS
from runtime.backends import FallbackChain
from runtime.governor import OperatingPoint, PowerGovernor
from runtime.loader import FlightPolicy
from runtime.phases import chunk_phases, compute_phases
from runtime.power_reading import TraceReading
from runtime.telemetry import Telemetry
from runtime.watchdog import Watchdog
from runtime.world_model import NoGuard, Verdict, WorldModelGuard

CONTROL_DT_S = 0.05  # 20 Hz
CMOS45_MODEL = MODELS[CMOS45.name]


WM_PREDICTIONS = 2  # world-model predictions per chunk at most: screening and anomaly


def operating_points(policy: FlightPolicy, candidates: int = 1,
                     screening: bool = True) -> list[OperatingPoint]:
    """The image's operating points (DDPM when an image has none); with a world model in
    the image each chunk's energy includes ``WM_PREDICTIONS`` of its predictions. A point
    that screens N candidates (its own ``candidates`` from ``compile --screen``, or every
    point with ``candidates`` N > 1 here, ``run --screen``) costs N chunks and N + 1
    predictions per plan (one screening each, one anomaly check); the flight's
    ``candidates`` names its points ``NAME+screenN`` and keeps only the unscreened ones
    of the image. ``screening=False`` (no world-model guard flies) leaves the screening
    points of the image out."""
    pts = policy.operating_points or [{"name": f"ddpm{policy.sampler.steps}",
                                       "ddim_steps": None, "replan": policy.chunk,
                                       "energy_j": 0.0, "success_rate": None,
                                       "energy_source": CMOS45.name}]
    if candidates > 1 or not screening:
        pts = [p for p in pts if int(p.get("candidates", 1)) == 1]
    wm = policy.manifest.get("world_model")
    wm_j = float(wm["energy_j"]) if wm else 0.0
    suffix = f"+screen{candidates}" if candidates > 1 else ""
    out = []
    for p in pts:
        n = candidates if candidates > 1 else int(p.get("candidates", 1))
        out.append(OperatingPoint(name=p["name"] + suffix, ddim_steps=p["ddim_steps"],
                                  micro_steps=policy.net.micro_steps, replan=int(p["replan"]),
                                  energy_j=n * float(p["energy_j"])
                                  + (WM_PREDICTIONS + n - 1) * wm_j,
                                  success_rate=p["success_rate"],
                                  energy_source=p["energy_source"], candidates=n))
    return out


@dataclass
class EpisodeResult:
    seed: int
    success: bool = False
    steps: int = 0
    chunks: int = 0
    energy_j: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    chunk_t_s: list[float] = field(default_factory=list)  # mission time of every chunk
    chunk_energy_j: list[float] = field(default_factory=list)
    points: dict[str, int] = field(default_factory=dict)
    safe_steps: int = 0
    deadline_misses: int = 0
    anomalies: int = 0  # chunks the world model flagged
    first_anomaly_step: int | None = None  # the episode step of the first flag
    vetoes: int = 0  # chunks it refused
    firing_rates: list[float] = field(default_factory=list)


class Executive:
    def __init__(self, policy: FlightPolicy, chain: FallbackChain, telemetry: Telemetry,
                 governor: PowerGovernor | None = None, watchdog: Watchdog | None = None,
                 guard: WorldModelGuard | None = None,
                 control_dt_s: float = CONTROL_DT_S, record_phases: bool = True,
                 plausible: Callable[[np.ndarray, list[float]], bool] | None = None,
                 reading: TraceReading | None = None,
                 points: list[OperatingPoint] | None = None) -> None:
        self.policy, self.chain, self.telemetry = policy, chain, telemetry
        self.reading = reading
        self.energy_source = reading.source if reading is not None else CMOS45.name
        self.governor, self.watchdog = governor, watchdog
        self.guard = guard or NoGuard()
        self.dt = control_dt_s
        self.record_phases = record_phases
        self.plausible = plausible
        self.layout = policy.layout()
        # ``points``: those the governor ranks (``fly_seeds`` builds them once for both)
        self.points = points or operating_points(policy, 1, not isinstance(self.guard, NoGuard))
        self.best = max(self.points, key=lambda p: (p.success_rate or 0.0, -p.energy_j))
        self.t = 0.0  # mission time, s
        self._tables = {p.name: policy.sampler.coefficients(p.ddim_steps) for p in self.points}
        self._base_budget = governor.budget if governor is not None else None
        self._scale = 1.0
        self.budget_log: list[tuple[float, float | None]] = []  # (mission s, W) cuts

    def _budget_from(self, info: dict[str, Any]) -> None:
        """Apply ``info["budget_scale"]`` (the power system's fraction of the nominal
        budget, e.g. a brown-out; a HIL plant sends it) to the governor when it changes."""
        scale = info.get("budget_scale")
        if scale is None or self._base_budget is None or float(scale) == self._scale:
            return
        self._scale = float(scale)
        base = self._base_budget
        cut = replace(base, watts=None if base.watts is None else base.watts * self._scale,
                      joules_per_episode=None if base.joules_per_episode is None
                      else base.joules_per_episode * self._scale)
        self.governor.set_budget(cut)
        self.budget_log.append((self.t, cut.watts))

    def _safe_action(self, last: np.ndarray | None, act_dim: int) -> np.ndarray:
        """Hold position: no motion, the gripper keeps its last command."""
        action = np.zeros(act_dim)
        if last is not None:
            action[-1] = last[-1]
        return action

    def _plan(self, op: OperatingPoint, obs: np.ndarray,
              rngs: tuple[np.random.Generator, np.random.Generator],
              res: EpisodeResult) -> np.ndarray | None:
        """The actions of the first of the ``candidates`` chunks the checks let through,
        or None (hold position). The candidates are sampled in one backend call (one row
        each: candidate 0 with the noise of the episode's stream, exactly the unscreened
        chunk, the others from the spare stream ``rngs[1]``) and screened in order: one the
        world model vetoes gives way to the next; a late or implausible call holds
        position. All candidates were computed, so all are booked."""
        n = op.candidates
        ks, coef = self._tables[op.name]
        draws = [self.policy.sampler.draw(rngs[min(j, 1)], 1, self.policy.net.action_size,
                                          len(ks)) for j in range(n)]
        x = np.concatenate([d[0] for d in draws])
        z = np.concatenate([d[1] for d in draws], axis=1)
        rows = np.repeat(obs[None], n, 0)
        t0 = time.perf_counter()
        guard = self.watchdog.guard(res.chunks) if self.watchdog else None
        if guard is not None:
            with guard as g:
                x0, step_spikes = self.chain.chunk(rows, x, ks, coef, z)
            missed = g.missed
        else:
            x0, step_spikes = self.chain.chunk(rows, x, ks, coef, z)
            missed = False
        t1 = time.perf_counter()
        latency = (t1 - t0) * 1e3
        spikes = None if step_spikes is None else np.asarray(step_spikes).sum(0)
        work = compute_phases(self.layout, ks, step_spikes, t1 - t0, n)
        energy = sum(CMOS45_MODEL.joules(p) for p in work)
        if self.reading is not None:  # what the rail's sensor read instead of the model
            energy = self.reading.chunk_j(self.t, self.dt)
        res.chunks += n
        res.latencies_ms.append(latency)
        res.chunk_t_s.append(self.t)
        res.points[op.name] = res.points.get(op.name, 0) + n
        rates = []
        if spikes is not None:  # per candidate: the call's spikes over its n rows
            per = [w * self.policy.net.micro_steps * len(ks) * n for w in self.policy.net.widths]
            rates = [float(s / d) for s, d in zip(spikes, per, strict=True)]
            res.firing_rates.append(rates)
        tel = self.telemetry
        tel.channel("latency_ms", latency)
        tel.channel("operating_point", op.name, mission_s=self.t)
        tel.channel("backend", self.chain.current.name)
        if rates:
            tel.channel("firing_rates", rates)
        plan, guard_j, times = None, 0.0, None
        for j in range(n):
            plan, verdict, times_j = self._screen(obs, x0[j:j + 1], rates, missed, op, res)
            guard_j += verdict.energy_j
            times = times_j or times
            if verdict.accept:  # executed, or held for a late or implausible call
                break
        self._book(res, energy + guard_j)
        if self.record_phases and times is not None:  # decode, world model (wall s)
            t2, t3 = times
            phases = chunk_phases(work, t2 - t1, t3 - t2, op.replan * self.dt)
            tel.channel("phases", [dict(vars(p)) for p in phases], mission_s=self.t,
                        wall_s=(t0, t2))
        return plan

    def _book(self, res: EpisodeResult, energy: float) -> None:
        """Book a chunk's energy (inference and world model) in the episode and with the
        governor."""
        res.energy_j += energy
        res.chunk_energy_j.append(energy)
        if self.governor is not None:
            self.governor.record(self.t, energy)
        self.telemetry.channel("energy_j", energy, source=self.energy_source,
                               mission_s=self.t)

    def _screen(self, obs: np.ndarray, x0: np.ndarray, rates: list[float], missed: bool,
                op: OperatingPoint, res: EpisodeResult
                ) -> tuple[np.ndarray | None, Verdict, tuple[float, float] | None]:
        """The actions to execute (None: hold position) after the deadline, plausibility
        and world-model checks, the guard's verdict, and the wall times (s) at which the
        guard started and ended (None when it did not run)."""
        tel = self.telemetry
        if missed:
            res.deadline_misses += 1
            return None, Verdict(), None
        chunk = self.policy.chunk_actions(np.atleast_2d(obs), x0)[0]
        if self.plausible is not None and not self.plausible(chunk, rates):
            tel.event("implausible_output", severity="warning")
            return None, Verdict(), None
        t2 = time.perf_counter()
        verdict = self.guard.screen(obs, chunk)
        times = (t2, time.perf_counter())
        if verdict.flagged:
            res.anomalies += 1
            if res.first_anomaly_step is None:
                res.first_anomaly_step = res.steps
            tel.event("anomaly", severity="warning", score=verdict.anomaly, reason=verdict.reason,
                      mission_s=self.t)
        if not verdict.accept:
            res.vetoes += 1
            tel.event("world_model_veto", severity="warning", reason=verdict.reason,
                      mission_s=self.t)
            return None, verdict, times
        return chunk[:op.replan], verdict, times

    def run_episode(self, env: Any, seed: int, max_steps: int | None = None) -> EpisodeResult:
        """Fly one episode of ``env`` (gymnasium API) from ``env.reset(seed=seed)``."""
        rngs = (np.random.default_rng([seed, 0x5F]), np.random.default_rng([seed, 0x5F, 1]))
        obs, info = env.reset(seed=seed)
        self._budget_from(info)
        res = EpisodeResult(seed=seed)
        limit = max_steps or getattr(env.unwrapped, "MAX_STEPS", None) or \
            env.spec.max_episode_steps
        if self.governor is not None:
            self.governor.reset_episode()
        self.guard.reset()
        last: np.ndarray | None = None
        act_dim = env.action_space.shape[0]
        done = False
        while not done:
            op = self.best
            if self.governor is not None:
                op = self.governor.choose(self.t, limit - res.steps)
                self.telemetry.channel("governor_state", self.governor.state)
            plan = self._plan(op, np.asarray(obs, np.float64), rngs, res) if op else None
            if plan is None:
                plan = [self._safe_action(last, act_dim)]
                res.safe_steps += 1
                if op is None and self.governor is not None:
                    self.governor.record(self.t, self.governor.safe_power_w * self.dt)
            for action in plan:
                self.guard.observe(obs, action)
                obs, _, term, trunc, info = env.step(action)
                last = action
                res.steps += 1
                self.t += self.dt
                self._budget_from(info)
                if term or trunc or res.steps >= limit:
                    res.success = bool(info.get("success", term))
                    done = True
                    break
                if info.get("replan"):  # the env lost ticks (HIL link): plan afresh
                    break
        self.telemetry.event("episode_end", seed=seed, success=res.success, steps=res.steps,
                             energy_j=res.energy_j)
        return res
