"""The power governor: per action chunk, the best operating point that fits the power budget.

Operating points are fixed at compile time (DDIM subset, micro-steps T, replanning interval)
with a predicted energy per chunk ``E_p`` (J) and a ground-measured success rate. A point
running alone draws ``P_p = E_p / (replan * dt) + P_idle`` (W).

Energy model. ``record(t, E)`` books the energy above idle (a chunk's inference energy, a
safe-mode step's compute) as an impulse at the chunk's *start* time ``t``; the board's idle
power ``P_idle`` is drawn continuously and added by the governor itself (do not record it).
Times are compared at 1 ns resolution (``round(t * 1e9)``), so the control period
accumulated in floating point lands on one grid. A window of ``W`` seconds ending at ``s``
holds the impulses with ``s - W < t <= s``; its energy is ``sum E + P_idle * W``.

Window budget (``watts``, ``window_s``). With ``C = margin * watts * W``, a point ``p`` with
chunk period ``tau = replan * dt`` fits at time ``t`` when, for every ``k = 0, 1, ..`` with
``k * tau < W``,

    H(t + k*tau - W, t] + (k + 1) * E_p + P_idle * W + R_safe  <=  C            (1)

where ``H(a, b]`` is the recorded energy in ``(a, b]`` and ``R_safe = P_safe * dt *
ceil(W / dt)`` reserves a full window of safe-mode steps. Term ``k`` is the window that
ends ``k`` chunks later if ``p`` keeps running, so (1) holds the check for every window
that will contain the new chunk: a point fits only if it can be sustained (no chunk-by-chunk
duty cycling, no flip-flop of states), and a budget below the cheapest point's power gives
safe mode.

Why no window is ever over budget. Take any window (``s - W, s]``, or a consecutive window
``[a, a + W)`` as ``windows()`` reports) and the last chunk impulse ``t_c`` inside it. All
impulses at or before ``t_c`` in the window lie in ``(t_c - W, t_c]``, which term ``k = 0``
of (1) counted when ``t_c`` was authorised (history is append-only and time never goes
back); impulses after ``t_c`` are safe-mode steps, at most ``ceil(W / dt)`` of them, covered
by ``R_safe``; idle is at most ``P_idle * W``. So the window's energy is ``<= C <= watts *
W``. A window without chunks holds only safe steps and idle, ``<= R_safe + P_idle * W``,
which is below ``C`` unless the budget is under the safe-mode floor (then nothing can hold
it, and the reason says so). The argument assumes each chunk's recorded energy is at most
the estimate used in (1): the estimate is ``max(E_p, the last 16 measured chunks of p)``,
so a measured overrun raises it at once, and the margin absorbs the first one. A budget cut
(``set_budget``) cannot undo energy already spent: windows are held to the new budget from
the first chunk after the cut, which waits (safe mode) until the window has drained.

Episode budget (``joules_per_episode``). With ``J = margin * joules_per_episode``, ``S`` the
energy spent this episode (records plus idle since its first step) and ``L`` the steps
left, ``p`` fits when

    S + max(1, ceil(L / replan)) * E_p + (P_idle + P_safe) * L * dt  <=  J      (2)

i.e. ``p`` could fly the rest of the episode (the ``P_safe`` term reserves safe-mode steps
for all of it). Every chunk is authorised by (2), and whatever follows the last one costs at
most ``(P_idle + P_safe) * dt`` a step, so an episode never spends more than ``J``. Without
``steps_left`` (and without ``episode_steps``), (2) only asks for the next chunk and its idle
time: the governor then spends greedily and degrades as the episode's energy runs out.

Ranking: highest ``success_rate``, ties by lower ``E_p``; points without a success rate come
last, by lower ``E_p``. ``choose`` returns the first that fits both (1) and (2); ``None``
means safe mode (hold position, minimal compute at ``safe_power_w``). ``state`` is
``nominal`` (the best point), ``degraded`` (another one) or ``safe``; every change emits
``on_event("governor_state", severity=..., from=.., to=.., point=.., reason=..)`` (the
``runtime.telemetry.Telemetry.event`` signature), and entering or leaving safe mode also a
``safe_mode`` event. Safe mode ends at the first ``choose`` where a point fits again.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hardware.errors import SpikeflightError

EventFn = Callable[..., None]
NOMINAL, DEGRADED, SAFE = "nominal", "degraded", "safe"
MEASURED_CHUNKS = 16  # measured chunks per point behind its energy estimate
_NS = 1_000_000_000


class GovernorError(SpikeflightError):
    """A bad budget, operating point or governor setting."""


def _ns(t_s: float) -> int:
    return round(t_s * _NS)


def _number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _check(ok: bool, what: str, value: Any) -> None:
    if not ok:
        raise GovernorError(f"{what}, got {value!r}")


@dataclass(frozen=True)
class OperatingPoint:
    """One compile-time configuration of the denoising loop.

    ``ddim_steps``: denoising steps (``None``: all K DDPM steps); ``micro_steps``: T per
    step; ``replan``: actions executed per chunk before the next inference; ``energy_j``:
    predicted energy per chunk (J, above idle) under the model ``energy_source``;
    ``success_rate``: measured on the ground (``None``: unknown); ``candidates``: chunks
    sampled per plan for the world model to screen (1: no screening; ``energy_j`` then
    covers all of them and their predictions).
    """

    name: str
    ddim_steps: int | None
    micro_steps: int
    replan: int
    energy_j: float
    success_rate: float | None
    energy_source: str
    candidates: int = 1

    def period_s(self, control_dt_s: float) -> float:
        """Chunk period (s): ``replan * control_dt_s``."""
        return self.replan * control_dt_s

    def power_w(self, control_dt_s: float, idle_w: float = 0.0) -> float:
        """Average power when flown alone (W): ``energy_j / period + idle_w``."""
        return self.energy_j / self.period_s(control_dt_s) + idle_w


@dataclass(frozen=True)
class Budget:
    """Average power ``watts`` (W) over any sliding window of ``window_s`` (s) and/or
    ``joules_per_episode`` (J); plans use at most ``margin`` of each."""

    watts: float | None = None
    window_s: float = 2.0
    joules_per_episode: float | None = None
    margin: float = 0.95

    def __post_init__(self) -> None:
        if self.watts is None and self.joules_per_episode is None:
            raise GovernorError("budget: give watts or joules_per_episode (or both)")
        for name in ("watts", "joules_per_episode"):
            value = getattr(self, name)
            if value is not None:
                _check(_number(value) and value > 0, f"budget: {name} must be > 0", value)
        _check(_number(self.window_s) and self.window_s > 0, "budget: window_s must be > 0 s",
               self.window_s)
        _check(_number(self.margin) and 0 < self.margin <= 1,
               "budget: margin must be in (0, 1]", self.margin)


def rank(points: Sequence[OperatingPoint]) -> list[OperatingPoint]:
    """Best first: highest success rate, then lower energy; unknown success rates last."""
    return sorted(points, key=lambda p: (p.success_rate is None, -(p.success_rate or 0.0),
                                         p.energy_j))


class PowerGovernor:
    """Chooses an operating point per chunk inside ``budget`` (see the module docstring).

    ``control_dt_s``: control period (s); ``idle_w``: idle power drawn all the time (W);
    ``safe_power_w``: compute power in safe mode (W, above idle; the caller records
    ``safe_power_w * control_dt_s`` per safe step); ``episode_steps``: episode length, used
    when ``choose`` gets no ``steps_left``.
    """

    def __init__(self, points: Sequence[OperatingPoint], budget: Budget, control_dt_s: float,
                 idle_w: float = 0.0, safe_power_w: float = 0.0,
                 episode_steps: int | None = None, on_event: EventFn | None = None) -> None:
        if not points:
            raise GovernorError("governor: no operating points")
        names = [p.name for p in points]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise GovernorError(f"governor: duplicate operating point {dup[0]!r}")
        for p in points:
            _check(isinstance(p.replan, int) and p.replan >= 1,
                   f"operating point {p.name!r}: replan must be an integer >= 1", p.replan)
            _check(_number(p.energy_j) and p.energy_j >= 0,
                   f"operating point {p.name!r}: energy_j must be >= 0 J", p.energy_j)
        _check(_number(control_dt_s) and _ns(control_dt_s) > 0,
               "governor: control_dt_s must be >= 1 ns", control_dt_s)
        _check(_number(idle_w) and idle_w >= 0, "governor: idle_w must be >= 0 W", idle_w)
        _check(_number(safe_power_w) and safe_power_w >= 0,
               "governor: safe_power_w must be >= 0 W", safe_power_w)
        _check(episode_steps is None or (isinstance(episode_steps, int) and episode_steps > 0),
               "governor: episode_steps must be a positive integer", episode_steps)
        self.points = rank(points)
        self.best = self.points[0]
        self.control_dt_s = float(control_dt_s)
        self.idle_w, self.safe_power_w = float(idle_w), float(safe_power_w)
        self.episode_steps = episode_steps
        self.on_event = on_event
        self.budget = self._validated(budget)
        self.state = NOMINAL
        self.point: OperatingPoint | None = None  # the last choice
        self.reason = ""
        self._times: list[int] = []  # ns, non-decreasing
        self._cum: list[float] = [0.0]  # _cum[i] = J recorded before _times[i]
        self._t0: int | None = None  # first choose/record (ns)
        self._measured = {p.name: deque(maxlen=MEASURED_CHUNKS) for p in self.points}
        self._pending: tuple[int, str] | None = None  # (ns, point) awaiting its record
        self._episode_j = 0.0  # J recorded this episode
        self._episode_t0: int | None = None  # the episode's first choose/record (ns)

    # -- bookkeeping ---------------------------------------------------------------------
    @staticmethod
    def _validated(budget: Budget) -> Budget:
        if not isinstance(budget, Budget):
            raise GovernorError(f"governor: budget must be a Budget, got {type(budget).__name__}")
        return budget

    def _start(self, t_ns: int) -> None:
        if self._t0 is None:
            self._t0 = t_ns
        if self._episode_t0 is None:
            self._episode_t0 = t_ns

    def record(self, t_s: float, energy_j: float) -> None:
        """Book ``energy_j`` (J above idle) spent by a chunk (or safe step) starting at
        ``t_s`` (s). Times never go back; a record at the time of the last ``choose``
        is that point's measured chunk energy and updates its estimate."""
        _check(_number(energy_j) and energy_j >= 0, "governor: recorded energy must be >= 0 J",
               energy_j)
        _check(_number(t_s), "governor: record time must be a finite number of seconds", t_s)
        t = _ns(t_s)
        if self._times and t < self._times[-1]:
            raise GovernorError(f"governor: record at t={t_s:.9g} s is before the last record "
                                f"at t={self._times[-1] / _NS:.9g} s")
        self._start(t)
        self._times.append(t)
        self._cum.append(self._cum[-1] + float(energy_j))
        self._episode_j += float(energy_j)
        if self._pending is not None and self._pending[0] == t:
            self._measured[self._pending[1]].append(float(energy_j))
        self._pending = None

    def reset_episode(self) -> None:
        """Start a new episode: its energy is zero again (the window history stays)."""
        self._episode_j = 0.0
        self._episode_t0 = None

    def set_budget(self, budget: Budget) -> None:
        """Replace the budget (e.g. a brown-out); the next ``choose`` applies it."""
        self.budget = self._validated(budget)
        self._emit("governor_budget", "warning", watts=budget.watts, window_s=budget.window_s,
                   joules_per_episode=budget.joules_per_episode, margin=budget.margin)

    def _emit(self, name: str, severity: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, severity=severity, **fields)

    # -- queries -------------------------------------------------------------------------
    def expected_energy_j(self, point: OperatingPoint) -> float:
        """Chunk energy used in the checks (J): ``max(energy_j, recent measured chunks)``."""
        return max(point.energy_j, max(self._measured.get(point.name, ()), default=0.0))

    def _spent_after(self, lo_ns: int) -> float:
        """J recorded at times > ``lo_ns``."""
        return self._cum[-1] - self._cum[bisect_right(self._times, lo_ns)]

    def episode_energy_j(self, t_s: float) -> float:
        """Energy of this episode up to ``t_s`` (J): records plus idle since its start."""
        if self._episode_t0 is None:
            return self._episode_j
        return self._episode_j + self.idle_w * max(0, _ns(t_s) - self._episode_t0) / _NS

    def _window_misfit(self, p: OperatingPoint, t: int) -> str | None:
        """Condition (1), or None when there is no power budget."""
        b = self.budget
        if b.watts is None:
            return None
        w_ns, dt_ns, tau_ns = _ns(b.window_s), _ns(self.control_dt_s), _ns(
            p.period_s(self.control_dt_s))
        cap = b.margin * b.watts * b.window_s
        floor = (self.idle_w * b.window_s
                 + self.safe_power_w * self.control_dt_s * -(-w_ns // dt_ns))
        e = self.expected_energy_j(p)
        need = max(self._spent_after(t + k * tau_ns - w_ns) + (k + 1) * e
                   for k in range(-(-w_ns // tau_ns))) + floor
        if need <= cap * (1 + 1e-12):
            return None
        if floor > cap:
            return (f"budget {b.watts:.4g} W is under the safe-mode floor "
                    f"({floor / b.window_s:.4g} W)")
        return (f"needs {need:.4g} J in a {b.window_s:g} s window, plan limit {cap:.4g} J "
                f"({b.margin:.0%} of {b.watts:.4g} W)")

    def _episode_misfit(self, p: OperatingPoint, t_s: float, steps_left: int | None) -> str | None:
        """Condition (2), or None when there is no episode budget."""
        b = self.budget
        if b.joules_per_episode is None:
            return None
        cap = b.margin * b.joules_per_episode
        spent = self.episode_energy_j(t_s)
        e = self.expected_energy_j(p)
        left = steps_left
        if left is None and self.episode_steps is not None and self._episode_t0 is not None:
            elapsed = round((_ns(t_s) - self._episode_t0) / _ns(self.control_dt_s))
            left = self.episode_steps - elapsed
        if left is None:
            need = spent + e + self.idle_w * p.period_s(self.control_dt_s)
        else:
            left = max(int(left), 0)
            need = (spent + max(1, -(-left // p.replan)) * e
                    + (self.idle_w + self.safe_power_w) * left * self.control_dt_s)
        if need <= cap * (1 + 1e-12):
            return None
        return (f"needs {need:.4g} J this episode ({spent:.4g} J spent), plan limit "
                f"{cap:.4g} J ({b.margin:.0%} of {b.joules_per_episode:.4g} J)")

    def misfit(self, point: OperatingPoint, t_s: float, steps_left: int | None = None
               ) -> str | None:
        """Why ``point`` does not fit at ``t_s`` (one line), or None when it fits."""
        return (self._window_misfit(point, _ns(t_s))
                or self._episode_misfit(point, t_s, steps_left))

    # -- the decision --------------------------------------------------------------------
    def choose(self, t_s: float, steps_left: int | None = None) -> OperatingPoint | None:
        """The best operating point that fits at ``t_s`` (s) with ``steps_left`` control
        steps to go in the episode; ``None``: safe mode (hold position)."""
        t = _ns(t_s)
        self._start(t)
        why: dict[str, str] = {}
        chosen = None
        for p in self.points:
            reason = self.misfit(p, t_s, steps_left)
            if reason is None:
                chosen = p
                break
            why[p.name] = reason
        if chosen is None:
            cheapest = min(self.points, key=self.expected_energy_j)
            state = SAFE
            reason = f"no operating point fits: {cheapest.name} {why[cheapest.name]}"
        elif chosen is self.best:
            state, reason = NOMINAL, f"{chosen.name} fits"
        else:
            state = DEGRADED
            reason = f"{self.best.name} {why[self.best.name]}; flying {chosen.name}"
        self._pending = (t, chosen.name) if chosen is not None else None
        self.point, self.reason = chosen, reason
        if state != self.state:
            old, self.state = self.state, state
            self._emit("governor_state", "info" if state == NOMINAL else "warning",
                       **{"from": old, "to": state,
                          "point": chosen.name if chosen else None, "reason": reason})
            if SAFE in (old, state):
                self._emit("safe_mode", "warning" if state == SAFE else "info",
                           active=state == SAFE, reason=reason)
        return chosen

    # -- reports -------------------------------------------------------------------------
    def windows(self, t_end: float) -> list[tuple[float, float, float, float]]:
        """Consecutive windows ``[t0, t1)`` of ``window_s`` from the first activity up to
        ``t_end`` (s): ``(t0, t1, joules, avg_w)`` with ``avg_w = joules / window_s``; the
        joules include idle power up to ``t_end``."""
        end = _ns(t_end)
        if self._t0 is None or end <= self._t0:
            return []
        w_s = self.budget.window_s
        w_ns = _ns(w_s)
        out = []
        for k in range(-(-(end - self._t0) // w_ns)):
            a = self._t0 + k * w_ns
            b = a + w_ns
            i = bisect_right(self._times, a - 1)
            j = bisect_right(self._times, b - 1)
            joules = self._cum[j] - self._cum[i] + self.idle_w * (min(b, end) - a) / _NS
            out.append((a / _NS, b / _NS, joules, joules / w_s))
        return out
