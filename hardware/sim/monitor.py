"""Why an episode failed: a monitor that watches a cabin episode step by step.

After every step ``EpisodeMonitor.observe()`` records what the task's scripted expert
would call the phase (``phase_from_state``), which bodies have been held, whether an order
latch (``order_fault``) was raised, and how fast the free task bodies moved before they
were first held. ``category()`` then names the first that applies of:

- ``wrong order``: the task's order latch was raised (panel: the plug went in unarmed);
- ``knocked away``: a free body moved faster than ``KNOCK_SPEED_MPS`` or spun faster than
  ``KNOCK_SPIN_RADPS`` before it was first held (resets draw at most 0.08 m/s and
  1 rad/s, so only a blow on the way to the catch gets there; once held, a body may
  legitimately move faster, e.g. drawer's item riding in the drawer as it is pushed shut);
- ``missed catch``: some graspable body was never held;
- ``misplaced``: everything was held and the expert's final phase (insert, release, swing,
  push: ``Expert.final_phase``) was reached, but the criterion never held: alignment,
  insertion or release fell short;
- ``timeout``: the rest (held, but the episode ran out before the last phase).

``furthest()`` names the furthest phase the episode reached (the largest phase index the
expert's ``phase_from_state`` gave; phases are numbered in task order): where a long task
such as drawer stopped making progress.
"""

from __future__ import annotations

import numpy as np

from hardware.sim.cabin import CabinEnv
from hardware.sim.experts.base import Expert

CATEGORIES = ("wrong order", "knocked away", "missed catch", "misplaced", "timeout")
KNOCK_SPEED_MPS = 0.25
KNOCK_SPIN_RADPS = 3.0


class EpisodeMonitor:
    """Watches one episode of ``env`` (reset it with ``reset()`` after each env reset)."""

    def __init__(self, env: CabinEnv, expert: Expert) -> None:
        self.env, self.expert = env, expert
        m = env.model
        self._free = [g.body for g in env.GRASPS
                      if m.jnt_type[m.body_jntadr[m.body(g.body).id]] == 0]  # free joints
        self.reset()

    def reset(self) -> None:
        self.held: set[str] = set()
        self.max_phase = 0
        self.order_fault = False
        self.knocked = False

    def observe(self) -> None:
        env = self.env
        if env.grasped is not None:
            self.held.add(env.grasped)
        self.max_phase = max(self.max_phase, self.expert.phase_from_state())
        self.order_fault |= bool(getattr(env, "order_fault", False))
        for body in self._free:
            if body in self.held:
                continue
            v = env.joint_qvel(body)
            if np.linalg.norm(v[:3]) > KNOCK_SPEED_MPS or np.linalg.norm(v[3:]) > KNOCK_SPIN_RADPS:
                self.knocked = True

    def furthest(self) -> str:
        """Name of the furthest expert phase reached so far."""
        return self.expert.PHASES[self.max_phase]

    def category(self) -> str:
        """Why the episode failed (call after its last step)."""
        if self.order_fault:
            return "wrong order"
        if self.knocked:
            return "knocked away"
        if len(self.held) < len(self.env.GRASPS):
            return "missed catch"
        if self.max_phase >= self.expert.final_phase:
            return "misplaced"
        return "timeout"
