"""Roll out a scripted expert (or any ``reset()``/``act(obs)`` object) and record episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from hardware.sim.dataset import Episode
from hardware.sim.layout import obs_fields
from hardware.sim.registry import TASKS, TaskError, load_callable, make_env, make_expert

__all__ = ["Rollout", "env_args_for", "obs_splitter"]


def obs_splitter(env: gym.Env) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Split a (T, D) observation array into named fields: the cabin layout, or one
    field ``obs`` for environments without a layout."""
    fields = obs_fields(env)
    if fields is None:
        return lambda obs: {"obs": obs}
    return lambda obs: {f.name: obs[:, f.slice] for f in fields}


def env_args_for(task: str, env: gym.Env, source: str, noise: float = 0.0,
                 noise_hold: int = 1, phases: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``env_args`` metadata stored with demonstrations of ``task`` (``phases``: the
    labelling expert's phase names, which the episodes' ``phases`` index)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sf_version = version("spikeflight")
    except PackageNotFoundError:
        sf_version = "unknown"
    fields = obs_fields(env) or []
    return {
        "env_name": task,
        "type": "spikeflight-cabin" if task in TASKS else "gymnasium",
        "env_kwargs": {},
        "obs_keys": [f.name for f in fields] or ["obs"],
        "obs_layout": [{"name": f.name, "start": f.start, "size": f.size, "doc": f.doc}
                       for f in fields],
        "obs_dim": int(np.prod(env.observation_space.shape)),
        "action_dim": int(np.prod(env.action_space.shape)),
        "action_doc": "dx, dy, dz (x 0.05 m), droll, dpitch, dyaw (x 0.5 rad), grip (>0 closes)"
        if task in TASKS else "",
        "control_hz": env.metadata.get("render_fps", 20),
        "success_criterion": getattr(env.unwrapped, "SUCCESS_CRITERION", ""),
        "source": source,
        "action_noise_std": noise,
        "action_noise_hold": noise_hold,
        "expert_phases": list(phases),
        "spikeflight_version": sf_version,
    }


NOISE_HOLD = 4  # steps a noise draw is held: one action chunk of the default policy


class Rollout:
    """Environment plus expert for one task, reused across episodes."""

    def __init__(self, task: str, expert: str | None = None, noise: float = 0.0,
                 noise_hold: int = NOISE_HOLD, **env_kwargs: Any) -> None:
        if noise < 0:
            raise TaskError(f"--noise must be >= 0, got {noise}")
        if noise_hold < 1:
            raise TaskError(f"the noise hold must be >= 1 step, got {noise_hold}")
        self.task = task
        self.noise = noise
        self.noise_hold = noise_hold
        self.env = make_env(task, **env_kwargs)
        if expert is not None:
            self.expert = load_callable(expert)(self.env.unwrapped)
        elif task in TASKS:
            self.expert = make_expert(task, self.env)
        else:
            raise TaskError(f"{task!r} has no scripted expert; pass --expert module:callable "
                            "(called with the env, returning an object with reset() and act(obs))")
        self.split = obs_splitter(self.env)
        self.source = expert or f"scripted-expert:{task}"

    def episode(self, seed: int) -> Episode:
        """One seeded episode of the expert.

        With ``noise`` > 0 (DART-style noise injection, Laskey et al. 2017) the env executes
        the expert's action plus N(0, noise^2) on every dimension but the last (the grip),
        clipped to the action bounds, while the *expert's* action is recorded as the label:
        the demonstrations then show how to recover from the drift a learned policy causes.
        One noise draw is held for ``noise_hold`` steps (default: a whole action chunk, the
        way a chunked policy's errors persist; 1 = a fresh draw every step). The executed
        actions are kept as ``executed_actions`` so episodes can be replayed.
        """
        env = self.env
        obs, info = env.reset(seed=seed)
        self.expert.reset()
        rng = np.random.default_rng([seed, 0x5F1])  # noise stream of this episode
        low, high = env.action_space.low, env.action_space.high
        data = getattr(env.unwrapped, "data", None)
        obs_l, act_l, exe_l, rew_l, done_l, state_l, phase_l = [], [], [], [], [], [], []
        success = bool(info.get("success", False))
        while True:
            action = np.asarray(self.expert.act(obs), np.float64)
            phase_l.append(getattr(self.expert, "phase", -1))
            if data is not None:
                state_l.append(np.concatenate([data.qpos, data.qvel]))
            obs_l.append(obs)
            act_l.append(action)
            executed = action
            if self.noise > 0:
                if (len(act_l) - 1) % self.noise_hold == 0:  # this step's index
                    draw = rng.normal(0.0, self.noise, action.shape[0] - 1)
                executed = action.copy()
                executed[:-1] += draw
                executed = np.clip(executed, low, high)
            exe_l.append(executed)
            obs, reward, terminated, truncated, info = env.step(executed)
            success = bool(info.get("success", terminated))
            rew_l.append(reward)
            done_l.append(bool(terminated))
            if terminated or truncated:
                break
        return Episode(obs=self.split(np.asarray(obs_l)), actions=np.asarray(act_l),
                       rewards=np.asarray(rew_l), dones=np.asarray(done_l), seed=seed,
                       success=success, states=np.asarray(state_l) if state_l else None,
                       executed_actions=np.asarray(exe_l) if self.noise > 0 else None,
                       phases=np.asarray(phase_l) if self.phases else None,
                       provenance=self.provenance)

    @property
    def phases(self) -> tuple[str, ...]:
        """The expert's phase names (empty for an expert that does not name them)."""
        return tuple(getattr(self.expert, "PHASES", ()))

    @property
    def provenance(self) -> dict[str, Any]:
        """Attributes recorded with each episode of this rollout."""
        if self.noise == 0:
            return {"source": "expert", "labels": "expert", "expert": self.source}
        return {"source": "expert+noise", "labels": "expert", "expert": self.source,
                "noise_std": self.noise, "noise_hold": self.noise_hold}
