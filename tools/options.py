"""Options shared by several commands, and number options checked when the command line
is parsed.

``ObsKeys``: ``--obs-keys a,b,c``, the observation fields of a demonstration file in the
environment's order (``hardware.sim.obs_order``), for files that do not state it.
``output_file`` / ``output_dir``: option callbacks that check an output path when the
command line is parsed, before any work: a file output must not be a directory and its
place must be writable; a run directory must be a directory (or not exist yet) in a
writable place.

Every ``float`` option of the ``spikeflight`` app refuses NaN and infinities (``--lr nan``,
``--budget-w inf``) with exit 2 and one line naming the option, and keeps its
``min``/``max`` range.

Typer accepts ``nan`` and ``inf`` for a float option (a range check does not catch NaN:
every comparison with it is false), so ``finite_floats`` gives each float option of the
app a parser that does, once, when the app is assembled (``tools/cli.py``).
"""

from __future__ import annotations

import inspect
import math
import os
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.models import OptionInfo, ParameterInfo

from hardware.files import OutputError, writable_output

ObsKeys = Annotated[str | None, typer.Option(
    "--obs-keys", help="the demonstration file's observation fields in the environment's "
    "order, comma-separated (for files that do not state it; robosuite or robomimic names)")]


def output_file(param: typer.CallbackParam, value: Any) -> Any:
    """Callback: ``value`` (a path, or None) must be writable as a file."""
    if value is not None:
        try:
            writable_output(value, param.opts[-1])
        except OutputError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def output_dir(param: typer.CallbackParam, value: Any) -> Any:
    """Callback: ``value`` must be a directory, or a path where one can be made."""
    if value is None:
        return value
    from pathlib import Path

    p, opt = Path(value), param.opts[-1]
    if p.exists() and not p.is_dir():
        raise typer.BadParameter(f"{opt} {p} is not a directory")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise typer.BadParameter(f"{opt} {p}: cannot write in it")
        return value
    try:
        writable_output(p, opt)  # its nearest existing parent must be writable
    except OutputError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def finite(low: float | None, high: float | None) -> Callable[[str], float]:
    """A parser: the text as a finite float within [low, high] (either may be None)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{text!r} is not a finite number")
        if low is not None and value < low or high is not None and value > high:
            span = f">= {low}" if high is None else f"<= {high}" if low is None else \
                f"in {low}..{high}"
            raise typer.BadParameter(f"{text} is not {span}")
        return value
    return parse


def _is_float(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation is float or (bool(args) and all(a is float for a in args))


def _infos(fn: Callable[..., Any]) -> list[ParameterInfo]:
    """The typer parameter infos of ``fn``'s float parameters (defaults or Annotated)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name, param in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if hint is None or not _is_float(hint):
            continue
        if isinstance(param.default, ParameterInfo):
            out.append(param.default)
        if typing.get_origin(hint) is typing.Annotated:
            out += [m for m in typing.get_args(hint)[1:] if isinstance(m, ParameterInfo)]
    return out


def finite_floats(app: typer.Typer) -> int:
    """Give every float option of ``app`` (and its sub-apps) the ``finite`` parser with
    its own range; the number of options changed."""
    count = 0
    for cmd in app.registered_commands:
        for info in _infos(cmd.callback):
            if isinstance(info, OptionInfo) and info.parser is None:
                info.parser = finite(info.min, info.max)
                info.min = info.max = None  # checked by the parser (typer skips them then)
                count += 1
    for group in app.registered_groups:
        count += finite_floats(group.typer_instance)
    return count
