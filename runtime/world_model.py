"""The world-model guard: a compact model beside the policy screens each action chunk.

The executive calls ``guard.reset()`` at the start of every episode, ``guard.observe(obs,
action)`` for every step it executes (the observation the action answered) and
``guard.screen(obs, chunk)`` before executing a chunk. A guard returns a ``Verdict``:
``accept`` (False: the chunk is vetoed and the robot holds position instead), an
``anomaly`` score and whether it is ``flagged`` (the executive raises an ``anomaly``
event), a ``reason``, and the ``energy_j`` its predictions cost (the executive books it
with the chunk). ``NoGuard`` accepts everything (no world model in the image).

``StudentGuard`` runs the distilled student world model an image carries
(``world_model.onnx``, calibrated at compile time: ``compiler/world_model.py``). The
student predicts the observation ``H`` steps ahead from an observation and ``H`` actions.

- Screening: the prediction for the chunk's first ``H`` actions (the last one repeated
  if the chunk is shorter). The chunk is vetoed when, for any velocity field in the
  envelope, the predicted speed ``||v_hat||`` exceeds the field's limit *and* the speed
  now: a chunk that would make an over-fast body faster is refused, one that slows it
  down is not (otherwise a tumbling payload would freeze the robot for good).
- Anomaly: once ``H`` steps have run since the last check, the prediction of the current
  observation from the observation ``H`` steps ago and the ``H`` actions executed since;
  its error ``e = sqrt(mean((c (s_hat - s))^2))`` (``c``: the manifest's
  ``error_scale``, the student's normalisation ``2 / span`` with the 0/1 flags left out:
  ``compiler/world_model.py``); the statistic is the mean of the last ``window`` errors, flagged
  when above the calibrated ``threshold`` (the error stays high, not one spike).

Every prediction costs ``energy_j`` (the student's MACs at ``cmos45-horowitz2014``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

WM_SECTION = "world_model.onnx"


@dataclass(frozen=True)
class Verdict:
    accept: bool = True
    anomaly: float = 0.0
    flagged: bool = False
    reason: str = ""
    energy_j: float = 0.0


class WorldModelGuard(Protocol):
    def reset(self) -> None:
        """A new episode starts."""
        ...

    def observe(self, obs: np.ndarray, action: np.ndarray) -> None:
        """``action`` was executed in answer to ``obs``."""
        ...

    def screen(self, obs: np.ndarray, chunk: np.ndarray) -> Verdict:
        """``obs`` (obs_dim,), ``chunk`` (chunk, act_dim) in raw action units."""
        ...


class NoGuard:
    """Accepts every chunk (no world model loaded)."""

    def reset(self) -> None:
        pass

    def observe(self, obs: np.ndarray, action: np.ndarray) -> None:
        pass

    def screen(self, obs: np.ndarray, chunk: np.ndarray) -> Verdict:
        return Verdict()


class StudentGuard:
    """The student world model of an image (module docstring); ``entry`` is the
    manifest's ``world_model``."""

    def __init__(self, graph: bytes, entry: dict[str, Any]) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.h = int(entry["horizon"])
        self.threshold = float(entry["threshold"])
        self.window = int(entry["window"])
        self.energy_j = float(entry["energy_j"])
        self.envelope = [(slice(int(e["start"]), int(e["start"]) + int(e["size"])),
                          e["field"], float(e["limit"])) for e in entry["envelope"]]
        self.scale = np.asarray(entry["error_scale"], np.float64)
        self.reset()

    def reset(self) -> None:
        self.history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.h)
        self.errors: deque[float] = deque(maxlen=self.window)
        self.since_check = 0

    def observe(self, obs: np.ndarray, action: np.ndarray) -> None:
        self.history.append((np.asarray(obs, np.float64), np.asarray(action, np.float64)))
        self.since_check += 1

    def predict(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, float]:
        """(observation H steps ahead, success probability within them) for ``obs`` and
        ``actions`` (H, act_dim)."""
        nxt, p = self.sess.run(None, {"obs": np.asarray(obs, np.float64)[None],
                                      "actions": np.asarray(actions, np.float64).reshape(1, -1)})
        return nxt[0], float(p[0])

    def error(self, predicted: np.ndarray, actual: np.ndarray) -> float:
        """The prediction error in the student's normalised units."""
        return float(np.sqrt(np.mean(((predicted - actual) * self.scale) ** 2)))

    def screen(self, obs: np.ndarray, chunk: np.ndarray) -> Verdict:
        energy, anomaly, flagged, reason = 0.0, 0.0, False, ""
        if len(self.history) == self.h and self.since_check >= self.h:
            s0 = self.history[0][0]
            acts = np.stack([a for _, a in self.history])
            self.errors.append(self.error(self.predict(s0, acts)[0], obs))
            self.since_check = 0
            energy += self.energy_j
            if len(self.errors) == self.window:
                anomaly = float(np.mean(self.errors))
                flagged = anomaly > self.threshold
                if flagged:
                    reason = f"prediction error {anomaly:.3g} > {self.threshold:.3g}"
        head = np.asarray(chunk[:self.h], np.float64)
        if len(head) < self.h:
            head = np.concatenate([head, np.repeat(head[-1:], self.h - len(head), axis=0)])
        nxt, _ = self.predict(obs, head)
        energy += self.energy_j
        for sl, name, limit in self.envelope:
            now, ahead = float(np.linalg.norm(obs[sl])), float(np.linalg.norm(nxt[sl]))
            if ahead > limit and ahead > now:
                return Verdict(False, anomaly, flagged, f"{name} would reach {ahead:.3g} "
                               f"(limit {limit:.3g})", energy)
        return Verdict(True, anomaly, flagged, reason, energy)


def guard_for(policy: Any) -> WorldModelGuard:
    """The image's student guard, or ``NoGuard`` when it carries no world model."""
    entry = policy.manifest.get("world_model")
    if not entry or WM_SECTION not in policy.image.sections:
        return NoGuard()
    return StudentGuard(policy.image.sections[WM_SECTION], entry)
