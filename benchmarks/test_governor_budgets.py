"""The governor under 100%, 50% and 25% of the unconstrained power (and 5%, below the
cheapest operating point): zero windows over budget, success per budget, safe mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.build import CompileOptions, compile_policy
from policies.checkpoint import shipped
from runtime.image import write_image
from runtime.keys import save_keypair
from tools.budget_sweep import budget_sweep

SHIPPED = shipped("hatch")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gov")
    key = Ed25519PrivateKey.generate()
    _, pub = save_keypair(root / "k", key)
    res = compile_policy(SHIPPED, CompileOptions(target="cpu-fixed"), key)
    return write_image(root / "hatch.sfimg", res.image), pub


def test_budgets_hold_with_success_reported(benchmark, image) -> None:
    rows = benchmark.pedantic(budget_sweep, args=(*image, 20), rounds=1, iterations=1)
    for r in rows:
        benchmark.extra_info[r["budget"]] = {
            "successes": r["successes"], "avg_uW": round(r["average_w"] * 1e6, 3),
            "windows_over": r["windows_over_budget"], "windows": r["windows"],
            "points": r["operating_points"], "safe_steps": r["safe_steps"]}
    assert all(r["windows_over_budget"] == 0 for r in rows[1:])
    assert rows[-1]["chunks"] == 0 and rows[-1]["safe_steps"] > 0  # 5%: safe mode only
