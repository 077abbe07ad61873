"""Every ``--json`` output is strict JSON: non-finite numbers become null."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from tools.json_out import dumps, finite_or_none

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def test_non_finite_numbers_become_null_anywhere_in_the_object() -> None:
    obj = {"a": float("nan"), "b": [1.0, float("inf"), {"c": np.float64("-inf")}],
           "d": (np.float32(0.5), np.int64(3)), "e": "NaN"}
    text = dumps(obj)
    assert json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))) == \
        {"a": None, "b": [1.0, None, {"c": None}], "d": [0.5, 3], "e": "NaN"}
    assert finite_or_none(math.pi) == math.pi


def test_no_tool_writes_json_around_the_strict_writer() -> None:
    """Every ``json.dumps`` call in tools/ either is the strict writer's own or refuses NaN
    itself (a standalone script)."""
    loose = []
    for p in sorted(TOOLS.glob("*.py")):
        if p.name == "json_out.py":
            continue
        lines = p.read_text().splitlines()
        for i, line in enumerate(lines):
            call = " ".join(lines[i:i + 3])
            if re.search(r"\bjson\.dumps\(", line) and "allow_nan=False" not in call:
                loose.append(f"{p.name}:{i + 1}")
    assert loose == []
