"""Task registry: the five cabin tasks by name, and bring-your-own environments named
``module:callable``.

``make_env("hatch")`` builds a cabin task; ``make_env("my_pkg.envs:make_door")`` imports
``my_pkg.envs`` and calls ``make_door()``, which must return a gymnasium env whose
action space is a ``Box`` and whose observation space is a ``Box`` or a ``Dict`` of
``Box`` fields (flattened, its fields named: ``hardware.sim.layout.FlatDict``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym

from hardware.errors import SpikeflightError

TASKS: dict[str, tuple[str, str]] = {
    "hatch": ("hardware.sim.tasks.hatch:HatchEnv", "hardware.sim.experts.hatch:HatchExpert"),
    "stow": ("hardware.sim.tasks.stow:StowEnv", "hardware.sim.experts.stow:StowExpert"),
    "cap": ("hardware.sim.tasks.cap:CapEnv", "hardware.sim.experts.cap:CapExpert"),
    "panel": ("hardware.sim.tasks.panel:PanelEnv", "hardware.sim.experts.panel:PanelExpert"),
    "drawer": ("hardware.sim.tasks.drawer:DrawerEnv", "hardware.sim.experts.drawer:DrawerExpert"),
}
DEFAULT_TASK = "hatch"


class TaskError(SpikeflightError):
    """A task name or ``module:callable`` that cannot be turned into an environment."""


def load_callable(ref: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return it; it must be callable."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise TaskError(f"{ref!r} is not of the form module:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(f"cannot import module {module_name!r} of {ref!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaskError(f"module {module_name!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TaskError(f"{ref!r} is not callable")
    return obj


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """Build the environment for a task name or a ``module:callable`` reference."""
    if name in TASKS:
        return load_callable(TASKS[name][0])(**kwargs)
    if ":" not in name:
        raise TaskError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)} "
                        "(or module:callable for your own gymnasium env)")
    try:
        env = load_callable(name)(**kwargs)
    except TaskError:
        raise
    except Exception as exc:  # the user's factory failed: say which and why
        raise TaskError(f"calling {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(env.observation_space, gym.spaces.Dict):
        from hardware.sim.layout import DictSpaceError, FlatDict

        try:
            env = FlatDict(env, name)
        except DictSpaceError as exc:
            raise TaskError(str(exc)) from None
    for label, space, allowed in (("observation", env.observation_space, "Box or a Dict of Box"),
                                  ("action", env.action_space, "Box")):
        if not isinstance(space, gym.spaces.Box):
            raise TaskError(f"{name!r} returned an env whose {label} space is "
                            f"{type(space).__name__}, not {allowed}")
    return env


def make_expert(name: str, env: gym.Env) -> Any:
    """The scripted expert of a cabin task, bound to ``env`` (its unwrapped instance)."""
    if name not in TASKS:
        raise TaskError(f"no scripted expert for {name!r}; experts exist for: {', '.join(TASKS)}")
    return load_callable(TASKS[name][1])(env.unwrapped)


@contextmanager
def task_env(name: str | None, **kwargs: Any) -> Iterator[gym.Env | None]:
    """``make_env(name)`` for the block, closed after it (None when ``name`` is None)."""
    if name is None:
        yield None
        return
    env = make_env(name, **kwargs)
    try:
        yield env
    finally:
        env.close()
