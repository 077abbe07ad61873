"""Make lava-nc 0.10.0 importable on Python 3.11.

lava-nc 0.10.0 (archived by Intel in May 2026) declares Python < 3.11, and one of its
modules, ``lava/magma/compiler/var_model.py``, uses ``ByteEncoder()`` instances as
dataclass field defaults. Python 3.11 rejects those ("mutable default ... use
default_factory"), so any Lava import that reaches the compiler fails.

``ensure_lava()`` loads that one module from Lava's own source with each
``= ByteEncoder()`` default rewritten to ``= field(default_factory=ByteEncoder)`` and
registers it in ``sys.modules`` before anything else imports it. The installed files are
not touched. Call it before importing ``lava``; it is idempotent and cheap after the first
call.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from types import ModuleType

LAVA_VERSION = "0.10.0"
_TARGET = "lava.magma.compiler.var_model"
_MUTABLE_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")


class LavaUnavailableError(ImportError):
    """lava-nc is not installed, or its source is not the version this fix targets."""


def patched_source(source: str) -> str:
    """Return ``var_model.py``'s source with the 3.11-incompatible defaults fixed."""
    return _MUTABLE_DEFAULT.sub("= field(default_factory=ByteEncoder)", source)


def ensure_lava() -> ModuleType:
    """Install the fixed ``var_model`` module (once) and return it."""
    loaded = sys.modules.get(_TARGET)
    if loaded is not None:
        return loaded
    try:
        spec = importlib.util.find_spec(_TARGET)
    except ModuleNotFoundError as exc:
        raise LavaUnavailableError(
            f"lava-nc is not installed: run `make setup` (installs lava-nc=={LAVA_VERSION})"
        ) from exc
    if spec is None or spec.origin is None:
        raise LavaUnavailableError(
            f"lava-nc is not installed: run `make setup` (installs lava-nc=={LAVA_VERSION})"
        )
    with open(spec.origin, encoding="utf-8") as fh:
        source = fh.read()
    module = importlib.util.module_from_spec(spec)
    module.__dict__["field"] = dataclasses.field  # the source imports only `dataclass`
    sys.modules[_TARGET] = module
    try:
        exec(compile(patched_source(source), spec.origin, "exec"), module.__dict__)
    except Exception:
        del sys.modules[_TARGET]
        raise
    return module
