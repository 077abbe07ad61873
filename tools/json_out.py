"""Strict JSON for every ``--json`` output and JSON report: a value that is not a finite
number (NaN, an infinity: a rate over zero episodes, a latency never measured) is written
as ``null``, since JSON has no token for it and strict parsers refuse Python's bare
``NaN``."""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (numpy's too) replaced by None, recursively
    through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:
        return finite_or_none(obj.item())  # a numpy scalar
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of ``finite_or_none(obj)`` that can only write strict JSON."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kw)
