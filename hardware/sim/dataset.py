"""Demonstration files in the robomimic HDF5 layout, written atomically and read with
validation.

Layout::

    data/                      attrs: total (steps), env_args (JSON: env_name, type,
                               env_kwargs, obs_keys, obs_layout, action_doc, control_hz,
                               source, spikeflight_version)
    data/demo_<i>/             attrs: num_samples, seed, success, and its provenance:
                               source (who acted: ``expert``, ``expert+noise``,
                               ``dagger``), labels (``expert``: every action is the
                               expert's answer to obs[t]) and, for DAgger episodes,
                               round, beta (expert share of the executed chunks) and
                               policy (the learner's checkpoint)
    data/demo_<i>/obs/<key>    (T, size) float64, one dataset per observation field
    data/demo_<i>/actions      (T, A) float64, the actions taken
    data/demo_<i>/rewards      (T,) float64
    data/demo_<i>/dones        (T,) uint8, 1 on the last step of a successful episode
    data/demo_<i>/states       (T, S) float64, simulator state (qpos, qvel) before each step
    data/demo_<i>/executed_actions  (T, A), for noise-injected or DAgger episodes: what
                               the env executed (``actions`` holds the expert's labels)
    data/demo_<i>/phases       (T,) int16, the labelling expert's task phase at each step
                               (an index into env_args ``expert_phases``), where known
    mask/train, mask/valid     demo names of a 90/10 split (robomimic filter keys)

``obs[t]`` is the observation the action ``actions[t]`` answered; ``rewards[t]`` and
``dones[t]`` are what that action produced.

Files use HDF5 1.10's format (``LIBVER``: checksummed superblock and object headers) and
every dataset a Fletcher-32 checksum. Strings (``env_args``, provenance, the masks) are
stored fixed-length (``_text``, ``_put_names``): a variable-length string lives in HDF5's
global heap, which no checksum covers, while a fixed-length attribute lives in its
checksummed object header. Writing goes to a hidden temporary file beside the
target, flushed and fsynced, then
renamed over the target, so a killed collection never leaves a partial file at the path
(and an existing file there stays intact until the new one is complete).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from hardware.files import regular_file
from hardware.sim.obs_order import MATCH_DEMOS, FirstObs, ObsOrderError, resolve_order

# HDF5 1.10's file format: its superblock and object headers carry checksums of their
# own (the default, earliest format's do not), so damage to the file's structure is
# caught too; any HDF5 >= 1.10 (h5py >= 2.10, robomimic's readers) reads it
LIBVER = ("v110", "v110")
REQUIRED = ("actions", "rewards", "dones")
PER_STEP = ("states", "executed_actions", "phases")  # optional, one row per step
_STANDARD_ATTRS = ("num_samples", "seed", "success")


class DatasetError(SpikeflightError):
    """A demonstration file that is missing, corrupt, truncated or malformed."""


@dataclass
class Episode:
    """One recorded episode, arrays in time order."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    seed: int
    success: bool
    states: np.ndarray | None = None
    executed_actions: np.ndarray | None = None
    phases: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=lambda: {"source": "expert",
                                                                 "labels": "expert"})

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    @property
    def relabelled(self) -> bool:
        """Whether its actions are expert labels of states someone else visited (a
        DAgger episode): such an episode teaches even if it failed."""
        return self.provenance.get("source") == "dagger"


class DemoWriter:
    """Collects episodes, then publishes the file atomically on ``close()``.

    Use as a context manager: the file appears at ``path`` only if the block completes;
    on an exception (including ``KeyboardInterrupt`` / ``SystemExit``) the temporary file
    is removed and ``path`` is left as it was.
    """

    def __init__(self, path: str | os.PathLike, env_args: dict[str, Any]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise DatasetError(f"{self.path}: is a directory, expected a .hdf5 file path")
        self._file = AtomicFile(self.path)
        self._h5 = h5py.File(self._file.path, "w", libver=LIBVER)
        self._data = self._h5.create_group("data")
        self._env_args = dict(env_args)
        self._names: list[str] = []
        self._steps = 0

    def add(self, ep: Episode) -> None:
        name = f"demo_{len(self._names)}"
        g = self._data.create_group(name)
        obs = g.create_group("obs")
        for key, arr in ep.obs.items():
            _put(obs, key, np.asarray(arr, np.float64))
        _put(g, "actions", np.asarray(ep.actions, np.float64))
        _put(g, "rewards", np.asarray(ep.rewards, np.float64))
        _put(g, "dones", np.asarray(ep.dones, np.uint8))
        if ep.states is not None:
            _put(g, "states", np.asarray(ep.states, np.float64))
        if ep.executed_actions is not None:
            _put(g, "executed_actions", np.asarray(ep.executed_actions, np.float64))
        if ep.phases is not None:
            _put(g, "phases", np.asarray(ep.phases, np.int16))
        g.attrs["num_samples"] = ep.length
        g.attrs["seed"] = ep.seed
        g.attrs["success"] = bool(ep.success)
        for key, value in ep.provenance.items():
            g.attrs[key] = _text(value) if isinstance(value, str) else value
        self._names.append(name)
        self._steps += ep.length

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        self._data.attrs["total"] = self._steps
        self._data.attrs["env_args"] = _text(json.dumps(self._env_args))
        n_valid = len(self._names) // 10
        mask = self._h5.create_group("mask")
        _put_names(mask, "train", self._names[n_valid:])
        _put_names(mask, "valid", self._names[:n_valid])
        self._h5.close()
        return self._file.commit()

    def abort(self) -> None:
        """Drop everything written so far; the target path is untouched."""
        try:
            self._h5.close()
        finally:
            self._file.abort()

    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@contextmanager
def open_demos(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a demonstration file and check its structure; errors name file and field."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        regular_file(path, "demonstration file")
    except OSError as exc:
        raise DatasetError(str(exc)) from None
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(", 1)[0].strip().rstrip(",") or "unreadable"
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt: "
                           f"{reason})") from exc
    try:
        _validate(path, fh)
        yield fh
    finally:
        fh.close()


def _validate(path: Path, fh: h5py.File) -> None:
    try:
        if "data" not in fh:
            raise DatasetError(f"{path}: no 'data' group (not a robomimic demonstration file)")
        data = fh["data"]
        if "env_args" not in data.attrs:
            raise DatasetError(f"{path}: data/ lacks the 'env_args' attribute")
        try:
            json.loads(data.attrs["env_args"])
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: data.attrs['env_args'] is not JSON: {exc}") from exc
        demos = demo_names(fh)
        if not demos:
            raise DatasetError(f"{path}: contains no demo_<i> groups")
        fields: set[str] | None = None
        for name in demos:
            g = data[name]
            for key in (*REQUIRED, "obs"):
                if key not in g:
                    raise DatasetError(f"{path}: data/{name} has no '{key}'")
            fields = set(g["obs"]) if fields is None else fields
            if set(g["obs"]) != fields:
                raise DatasetError(f"{path}: data/{name}/obs holds the fields "
                                   f"{', '.join(sorted(g['obs']))}, data/{demos[0]}/obs "
                                   f"holds {', '.join(sorted(fields))}")
            for key in (*REQUIRED, *(k for k in PER_STEP if k in g),
                        *(f"obs/{k}" for k in g["obs"])):
                _check_layout(path, name, key, g[key])
            n = g["actions"].shape[0]
            if n == 0:
                raise DatasetError(f"{path}: data/{name} is empty (0 steps)")
            for key in (*REQUIRED, *(k for k in PER_STEP if k in g)):
                if g[key].shape[0] != n:
                    raise DatasetError(f"{path}: data/{name}/{key} has {g[key].shape[0]} "
                                       f"steps, actions has {n}")
            for key, ds in g["obs"].items():
                if ds.shape[0] != n:
                    raise DatasetError(f"{path}: data/{name}/obs/{key} has {ds.shape[0]} "
                                       f"steps, actions has {n}")
            for key in ("actions", *(f"obs/{k}" for k in g["obs"])):
                _get(path, g[key], -1)  # the last row: truncated data raises here
    except (OSError, KeyError, RuntimeError) as exc:
        raise DatasetError(f"{path}: corrupt HDF5 content ({exc})") from exc


# dimensions each dataset must have (obs fields: one row per step, scalars or vectors)
_NDIM = {"actions": (2,), "rewards": (1,), "dones": (1,), "states": (2,),
         "executed_actions": (2,), "phases": (1,)}


def _check_layout(path: Path, demo: str, key: str, ds: h5py.Dataset) -> None:
    """A dataset must be numeric with the dimensions its role needs (``_NDIM``)."""
    if not isinstance(ds, h5py.Dataset):
        raise DatasetError(f"{path}: data/{demo}/{key} is a group, expected a dataset")
    if ds.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: data/{demo}/{key} holds {ds.dtype} values, expected "
                           "numbers")
    want = _NDIM.get(key, (1, 2))
    if ds.ndim not in want:
        raise DatasetError(f"{path}: data/{demo}/{key} has {ds.ndim} dimension(s), expected "
                           f"{' or '.join(map(str, want))}")


def demo_names(fh: h5py.File) -> list[str]:
    """``demo_<i>`` group names in numeric order."""
    names = [k for k in fh["data"] if k.startswith("demo_") and k[5:].isdigit()]
    return sorted(names, key=lambda k: int(k[5:]))


def env_args(fh: h5py.File) -> dict[str, Any]:
    return json.loads(fh["data"].attrs["env_args"])


def _put(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """A dataset with HDF5's Fletcher-32 checksum on every chunk, so that a flipped byte
    is caught when it is read (``_get``); empty arrays cannot be chunked and go plain."""
    group.create_dataset(name, data=data, fletcher32=data.size > 0)


def _text(value: str) -> np.bytes_:
    """A string as a fixed-length UTF-8 value (HDF5 keeps it in the checksummed object
    header; h5py reads it back as ``bytes``, which ``_str`` and ``json.loads`` take)."""
    return np.bytes_(value.encode())


def _str(value: Any) -> Any:
    """An attribute as Python text where it is text, fixed-length or not."""
    return value.decode() if isinstance(value, bytes) else value


def _put_names(group: h5py.Group, name: str, names: list[str]) -> None:
    """Demo names as a fixed-length byte-string dataset (robomimic's filter-key form),
    checksummed like every other dataset."""
    width = max((len(n) for n in names), default=1)
    group.create_dataset(name, data=np.array(names, dtype=f"S{width}"), fletcher32=bool(names))


def _get(path: str | os.PathLike, ds: h5py.Dataset, index: Any = ()) -> np.ndarray:
    """``ds[index]`` (the whole dataset by default); a chunk failing its checksum (or
    unreadable) is a one-line ``DatasetError`` naming the file and the dataset."""
    try:
        return ds[index]
    except OSError as exc:
        reason = str(exc).split("(", 1)[0].strip().rstrip(",") or "unreadable"
        raise DatasetError(f"{path}: dataset {ds.name} is corrupt: {reason} (its checksum "
                           "does not match or it cannot be read)") from None


def read_episodes(path: str | os.PathLike, task: str | None = None,
                  obs_keys: Sequence[str] | None = None, strict: bool = True) -> list[Episode]:
    """All episodes of a file, observation fields in the environment's order
    (``hardware.sim.obs_order.resolve_order``: ``obs_keys``, the file's ``obs_keys``, or
    from ``task``'s environment). ``strict=False`` (for reports) falls back to the file's
    listing order where no order can be established."""
    with open_demos(path) as fh:
        order, _ = observation_order(path, fh, task, obs_keys, strict)
        return _episodes(path, fh, order)


def _episodes(path: str | os.PathLike, fh: h5py.File, order: Sequence[str]) -> list[Episode]:
    """The episodes of an open file, observation fields in ``order``."""
    out = []
    for name in demo_names(fh):
        g = fh["data"][name]

        def read(key: str, group: h5py.Group = g) -> np.ndarray | None:
            return _get(path, group[key]) if key in group else None

        try:
            out.append(Episode(
                obs={k: _get(path, g["obs"][k]) for k in order},
                actions=read("actions"), rewards=read("rewards"), dones=read("dones"),
                seed=int(g.attrs.get("seed", -1)),
                success=bool(g.attrs.get("success", False)),
                states=read("states"), executed_actions=read("executed_actions"),
                phases=read("phases"), provenance=_provenance(g.attrs),
            ))
        except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: data/{name} is corrupt ({exc})") from None
    return out


def observation_order(path: str | os.PathLike, fh: h5py.File, task: str | None = None,
                      obs_keys: Sequence[str] | None = None,
                      strict: bool = True) -> tuple[list[str], str]:
    """(field order, its source) of an open demonstration file; see ``obs_order``."""
    names = demo_names(fh)
    keys = list(fh["data"][names[0]]["obs"])

    def firsts() -> list[FirstObs]:
        out = []
        for name in names:
            g = fh["data"][name]
            seed = int(g.attrs.get("seed", -1))
            if seed >= 0:
                out.append(FirstObs(seed, {k: np.ravel(_get(path, g["obs"][k], 0))
                                           for k in keys}))
            if len(out) == MATCH_DEMOS:
                break
        return out

    stated = env_args(fh).get("obs_keys")
    if stated is not None and not (isinstance(stated, list)
                                   and all(isinstance(k, str) for k in stated)):
        raise DatasetError(f"{path}: env_args obs_keys is not a list of field names")
    try:
        return resolve_order(str(path), keys, stated, firsts, task, obs_keys)
    except ObsOrderError:
        if strict or obs_keys:  # an order the user named must fit
            raise
        return keys, "file listing (unverified)"


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _provenance(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """A demo group's provenance attributes (files without them: expert episodes)."""
    out: dict[str, Any] = {"source": "expert", "labels": "expert"}
    for key, value in attrs.items():
        if key not in _STANDARD_ATTRS:
            out[key] = _str(value.item() if isinstance(value, np.generic) else value)
    return out


def summarize(path: str | os.PathLike, task: str | None = None,
              obs_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Counts, lengths, success rate and per-field ranges of a demonstration file, and
    its observation order with where that order came from (``task``: the environment to
    resolve it against, if known)."""
    with open_demos(path) as fh:
        args = env_args(fh)
        order, source = observation_order(path, fh, task, obs_keys, strict=False)
        episodes = _episodes(path, fh, order)
    lengths = np.array([ep.length for ep in episodes])
    ranges: dict[str, dict[str, list[float]]] = {}
    non_finite: dict[str, int] = {}
    acts = np.concatenate([ep.actions for ep in episodes])
    columns = {f"obs/{key}": np.concatenate([ep.obs[key] for ep in episodes]).reshape(
        int(lengths.sum()), -1) for key in episodes[0].obs}
    for name, allv in {**columns, "actions": acts}.items():
        ranges[name] = {"min": allv.min(0).tolist(), "max": allv.max(0).tolist()}
        if bad := int((~np.isfinite(allv)).sum()):
            non_finite[name] = bad
    return {
        "file": str(path),
        "env_name": args.get("env_name"),
        "episodes": len(episodes),
        "steps": int(lengths.sum()),
        "length": {"min": int(lengths.min()), "mean": float(lengths.mean()),
                   "max": int(lengths.max())},
        "success_rate": float(np.mean([ep.success for ep in episodes])),
        "successes": int(sum(ep.success for ep in episodes)),
        "sources": _count(str(ep.provenance.get("source")) for ep in episodes),
        "obs_dim": int(sum(ep.obs[k].reshape(ep.length, -1).shape[1]
                           for ep in episodes[:1] for k in ep.obs)),
        "action_dim": int(acts.shape[1]),
        "non_finite": non_finite,
        "obs_keys": order,
        "obs_order": source,
        "ranges": ranges,
    }
