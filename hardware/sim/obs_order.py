"""The order in which a demonstration file's observation fields form the policy's vector.

A robomimic file keeps one dataset per field (``data/demo_<i>/obs/<key>``) and HDF5 lists
them alphabetically, which is not the environment's order. The order is taken from, in
turn:

1. ``--obs-keys a,b,c`` given by the user (any subset of the file's fields);
2. the file's own statement, ``env_args["obs_keys"]`` (spikeflight writes it; it is not
   part of robomimic's format);
3. a file with a single field;
4. the task's environment (built only now): its published layout, the cabin tasks'
   ``obs_layout()`` names or a ``keys`` attribute on the env or one of its wrappers
   (robosuite's ``GymWrapper``, a ``Dict`` space's keys); where there is none or the
   file's names differ from it, matching the first stored observation of up to
   ``MATCH_DEMOS`` demos that record a seed against ``env.reset(seed=seed)``: the orders
   of all the file's fields whose concatenation equals every one of those resets.

Otherwise, or when matching leaves several orders, the file is refused in one line that
names the candidates (and ``--obs-keys``). Names match across robosuite's and
robomimic's conventions: robosuite's ``object-state`` is robomimic's ``object``, and in
general ``<name>-state`` matches ``<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from hardware.errors import SpikeflightError
from hardware.sim.layout import obs_fields
from hardware.sim.registry import task_env

MATCH_DEMOS = 5  # demos whose first observation is compared with a seeded reset
MATCH_ATOL = 1e-5  # absolute tolerance of that comparison (float32 files round)
MAX_LISTED = 3  # candidate orders named in an ambiguity error
MAX_CANDIDATES = 1000  # orders enumerated per reset before the file counts as ambiguous


class ObsOrderError(SpikeflightError):
    """A demonstration file whose observation order cannot be established."""


@dataclass(frozen=True)
class FirstObs:
    """One demo's seed and its first stored value of every field (1-D arrays)."""

    seed: int
    fields: dict[str, np.ndarray]


def parse_obs_keys(text: str | None) -> list[str] | None:
    """``--obs-keys a,b,c`` as a list (None when the option was not given)."""
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",")]
    if not all(keys) or len(set(keys)) != len(keys):
        raise ObsOrderError(f"--obs-keys must name distinct fields separated by commas, "
                            f"got {text!r}")
    return keys


def _bare(name: str) -> str:
    return name.removesuffix("-state")


def match_names(wanted: Sequence[str], available: Sequence[str], what: str) -> list[str]:
    """The file fields named by ``wanted`` (robosuite or robomimic spelling), in that
    order; a name without a field is an error that lists the file's fields."""
    out = []
    for name in wanted:
        hits = [a for a in available if a == name] or [a for a in available
                                                      if _bare(a) == _bare(name)]
        if len(hits) != 1:
            raise ObsOrderError(f"{what} names the observation field {name!r}, which the "
                                f"file does not hold (its fields: {', '.join(available)})")
        out.append(hits[0])
    return out


def env_layout(env: gym.Env) -> list[str] | None:
    """The field names an environment publishes in its vector's order, if any."""
    fields = obs_fields(env)
    if fields is not None:
        return [f.name for f in fields]
    current: gym.Env | None = env
    while current is not None:
        keys = current.__dict__.get("keys")
        if isinstance(keys, list | tuple) and keys and all(isinstance(k, str) for k in keys):
            return list(keys)
        current = getattr(current, "env", None)
    return None


def _orders_matching(target: np.ndarray, fields: dict[str, np.ndarray]) -> list[list[str]]:
    """Every order of all of ``fields`` whose concatenation equals ``target``; more than
    ``MAX_CANDIDATES`` (many equal fields: the orders grow factorially) is an error."""
    found: list[list[str]] = []

    def extend(pos: int, used: list[str]) -> None:
        if len(found) > MAX_CANDIDATES:
            raise ObsOrderError(f"more than {MAX_CANDIDATES} orders of the observation "
                                "fields reproduce env.reset(seed) (many fields are equal "
                                "at reset): pass --obs-keys")
        if len(used) == len(fields):
            if pos == target.size:
                found.append(list(used))
            return
        for name, value in fields.items():
            if name in used or pos + value.size > target.size:
                continue
            if np.allclose(target[pos:pos + value.size], value, rtol=0, atol=MATCH_ATOL):
                extend(pos + value.size, [*used, name])

    extend(0, [])
    return found


def matched_order(env: gym.Env, firsts: Sequence[FirstObs]) -> list[list[str]]:
    """The orders consistent with ``env.reset(seed)`` for every demo in ``firsts``."""
    candidates: list[list[str]] | None = None
    for first in firsts:
        obs, _ = env.reset(seed=first.seed)
        found = _orders_matching(np.asarray(obs, np.float64).ravel(), first.fields)
        candidates = found if candidates is None else [c for c in candidates if c in found]
        if len(candidates) <= 1:
            break
    return candidates or []


def resolve_order(path: str, file_keys: Sequence[str], stated: Sequence[str] | None,
                  firsts: Callable[[], Sequence[FirstObs]], task: str | None = None,
                  obs_keys: Sequence[str] | None = None) -> tuple[list[str], str]:
    """(field order, where it came from) for a file with fields ``file_keys``; see the
    module docstring for the rules. ``stated``: the file's ``obs_keys``; ``firsts``: its
    seeded demos' first observations (read only if matching needs them); ``task``: the
    environment (task name or ``module:callable``) the fields must fit."""
    if obs_keys:
        return match_names(obs_keys, file_keys, "--obs-keys"), "--obs-keys"
    if stated:
        return match_names(stated, file_keys, f"{path}'s obs_keys"), "file"
    if len(file_keys) == 1:
        return list(file_keys), "single field"
    hint = (f"pass --obs-keys with the fields {', '.join(file_keys)} in the environment's "
            "order")
    if task is None:
        raise ObsOrderError(f"{path} does not state its observation order and no "
                            f"environment was given to take it from: {hint}")
    with task_env(task) as env:
        layout, mismatch = env_layout(env), None
        if layout:
            try:
                return match_names(layout, file_keys, f"{task}'s layout"), "environment"
            except ObsOrderError as exc:  # other names: match the resets instead
                mismatch = str(exc)
        seeded = firsts()
        if not seeded:
            why = mismatch or f"{path} does not state its observation order, {task} publishes none"
            raise ObsOrderError(f"{why}; the demos record no seeds to reset it with: {hint}")
        candidates = matched_order(env, seeded)
    if len(candidates) == 1:
        return candidates[0], "matched env.reset(seed)"
    if not candidates:
        raise ObsOrderError(f"{path}: no order of its observation fields reproduces "
                            f"{task}'s reset(seed) of its demos (another environment?): "
                            f"{hint}")
    listed = "; ".join(",".join(c) for c in candidates[:MAX_LISTED])
    more = f" and {len(candidates) - MAX_LISTED} more" if len(candidates) > MAX_LISTED else ""
    raise ObsOrderError(f"{path}: the observation order is ambiguous, {len(candidates)} "
                        f"orders reproduce {task}'s reset(seed) ({listed}{more}): pass "
                        "--obs-keys")
