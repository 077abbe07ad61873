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


def test_no_command_prints_json_around_the_strict_writer() -> None:
    loose = [f"{p.name}:{i + 1}" for p in sorted(TOOLS.glob("*.py"))
             for i, line in enumerate(p.read_text().splitlines())
             if re.search(r"print\(json\.dumps\(", line) and "allow_nan=False" not in line
             and "allow_nan=False" not in p.read_text().splitlines()[i + 1]]
    assert loose == []
