"""Fault scenarios of the hardware-in-the-loop harness: what the plant and the link do to
the control-rate traffic (sensor and actuator frames). Episode start and stop frames are
the harness's own and are never faulted.

Each scenario is a named set of fault parameters; everything random comes from
``numpy.random.default_rng([seed, 0x41])`` per episode, so a scenario is the same for a
given episode seed in every run.

- ``nominal``: no faults.
- ``sensor-noise``: Gaussian noise of ``noise_std`` (observation units: m, rad, m/s, ...)
  on every observation field of every sensor sample.
- ``sensor-dropout``: with probability ``dropout_p`` a sensor sample repeats the previous
  one (a stale reading; the frame itself is intact).
- ``corrupt-frames``: with probability ``corrupt_p`` a sensor frame, and independently its
  actuator answer, has one random bit flipped after its CRC was computed. The receiver's
  CRC check drops it; the plant holds position for that tick.
- ``link-loss``: from tick ``loss_start`` on, ``loss_ticks`` ticks of traffic are lost in
  both directions. The plant holds position; the device, after ``LOSS_TICKS`` silent
  ticks, is in safe mode until a sensor frame arrives again, then plans afresh.
- ``actuator-saturation``: the arm's motion commands saturate at ``saturation`` of their
  range (the gripper command is unchanged).
- ``brownout``: from tick ``brownout_tick`` of the run (counted over its episodes) the
  power system grants only ``brownout_scale`` of the nominal power budget, for the rest of
  the run (sent in every sensor and start frame as ``budget_scale``). The device's
  governor degrades or holds in safe mode; no power window may exceed the budget in
  force.
- ``seu``: single-event upsets, ``seu_rate_hz`` random bit flips per second in the device's
  weight memory (injected by the device, ``device fly --inject-seu-hz``); its scrubber
  (``runtime/scrubber.py``) must detect and repair every one within a scrub period, and
  its output plausibility check guards the chunks in between.
- ``disturbance``: every ``impulse_every`` ticks each free-drifting body of the task (every
  free joint but the gripper's: stow's payload, cap's container and lid, panel's plug,
  drawer's item; hatch has none) gets a velocity change of ``impulse_mps`` in a random
  direction, as a bump from the crew or a thruster firing would give it.
- ``stuck-joint``, ``grasp-slip``, ``sensor-bias``, ``mass-change``: the plant's world
  changes from step ``fault_start`` of every episode (``hardware.sim.faults.FaultEnv``:
  a seized mechanism or wrist, a grasp that lets go, a biased position sensor, heavier
  bodies); what the device's world-model guard should flag as an anomaly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import mujoco
import numpy as np

from hardware.errors import SpikeflightError
from hardware.sim.faults import FAULTS


@dataclass(frozen=True)
class Scenario:
    """A named fault model: noise std (observation units), dropout and corruption
    probabilities per frame, the lost ticks ``[loss_start, loss_start + loss_ticks)`` and the
    actuator saturation (fraction of the command range; ``None``: none), and the tick of
    the run (counted over all its episodes) from which the power budget is
    ``brownout_scale`` of nominal (-1: never); ``seu_rate_hz``: upsets per second injected
    into the device's weight memory; every ``impulse_every`` ticks (0: never) each drifting
    body gets a velocity kick of ``impulse_mps`` in a random direction; ``plant_fault``
    (``hardware.sim.faults.FAULTS``) from step ``fault_start`` of every episode."""

    name: str
    noise_std: float = 0.0
    dropout_p: float = 0.0
    saturation: float | None = None
    corrupt_p: float = 0.0
    loss_start: int = 0
    loss_ticks: int = 0
    brownout_tick: int = -1
    brownout_scale: float = 1.0
    seu_rate_hz: float = 0.0
    impulse_every: int = 0
    impulse_mps: float = 0.0
    plant_fault: str | None = None
    fault_start: int = 20

    def params(self) -> dict[str, float | int | str | None]:
        """The fault parameters that differ from nominal (and a plant fault's start)."""
        base = asdict(NOMINAL)
        out = {k: v for k, v in asdict(self).items() if k != "name" and v != base[k]}
        if self.plant_fault:
            out["fault_start"] = self.fault_start
        return out

    def budget_scale(self, tick: int) -> float:
        """The fraction of the nominal power budget granted at ``tick`` of the run."""
        return self.brownout_scale if 0 <= self.brownout_tick <= tick else 1.0

    def lost(self, tick: int) -> bool:
        """Whether the link is down at ``tick``."""
        return self.loss_start <= tick < self.loss_start + self.loss_ticks


NOMINAL = Scenario("nominal")
SCENARIOS = {s.name: s for s in (
    NOMINAL,
    Scenario("sensor-noise", noise_std=0.002),
    Scenario("sensor-dropout", dropout_p=0.2),
    Scenario("corrupt-frames", corrupt_p=0.05),
    Scenario("link-loss", loss_start=30, loss_ticks=10),
    Scenario("actuator-saturation", saturation=0.5),
    Scenario("brownout", brownout_tick=20, brownout_scale=0.3),
    Scenario("seu", seu_rate_hz=1.0),
    Scenario("disturbance", impulse_every=40, impulse_mps=0.03),
    *(Scenario(f, plant_fault=f) for f in FAULTS),
)}


def parse_suite(spec: str) -> list[Scenario]:
    """``nominal,corrupt-frames,...`` as scenarios (one-line error for an unknown name)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise SpikeflightError(f"--suite {spec!r}: unknown scenario {', '.join(bad) or '(none)'}"
                               f"; choose from {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]


class Faults:
    """The scenario applied to one episode (seeded by the episode's seed)."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.s = scenario
        self.rng = np.random.default_rng([seed, 0x41])
        self._last: np.ndarray | None = None

    def sense(self, obs: np.ndarray) -> np.ndarray:
        """The sensor sample the plant reports for true state ``obs``."""
        obs = np.asarray(obs, np.float64)
        if self._last is not None and self.s.dropout_p and self.rng.random() < self.s.dropout_p:
            return self._last
        if self.s.noise_std:
            obs = obs + self.rng.normal(0.0, self.s.noise_std, obs.shape)
        self._last = obs
        return obs

    def corrupt(self) -> bool:
        """Whether the next frame gets a bit flipped."""
        return bool(self.s.corrupt_p) and self.rng.random() < self.s.corrupt_p

    def flip(self, data: bytes) -> bytes:
        """``data`` with one random bit flipped."""
        out = bytearray(data)
        bit = int(self.rng.integers(len(out) * 8))
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    def disturb(self, env: Any, tick: int) -> int:
        """Kick the drifting bodies of ``env`` (a cabin task) at ``tick`` if due; how many
        bodies were kicked."""
        if not self.s.impulse_every or tick % self.s.impulse_every:
            return 0
        u = env.unwrapped
        m = u.model
        kicked = 0
        for j in range(m.njnt):
            if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE or m.joint(j).name == "gripper":
                continue
            d = self.rng.normal(size=3)
            adr = m.jnt_dofadr[j]
            u.data.qvel[adr:adr + 3] += self.s.impulse_mps * d / np.linalg.norm(d)
            kicked += 1
        return kicked

    def actuate(self, action: np.ndarray) -> np.ndarray:
        """The command the actuators carry out."""
        if self.s.saturation is None:
            return action
        out = np.array(action, np.float64)
        out[:-1] = np.clip(out[:-1], -self.s.saturation, self.s.saturation)
        return out
