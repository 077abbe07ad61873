"""Compile time (median of 3, target <= 60 s wall on the 2-core machine, conformance and
operating points included, with the time per stage) and image size of the shipped default
policy, per target; and closed-loop success of its fixed-point core against its float
network on the default task."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.build import CompileOptions, compile_policy
from compiler.closed_loop import compare_success
from policies.checkpoint import shipped

SHIPPED = shipped("hatch")


@pytest.mark.parametrize("target", ["loihi2", "cpu-fixed", "cpu"])
def test_compile_time_and_image_size(benchmark, target: str) -> None:
    key = Ed25519PrivateKey.generate()
    result = benchmark.pedantic(compile_policy, args=(SHIPPED, CompileOptions(target=target), key),
                                rounds=3, iterations=1)
    benchmark.extra_info.update(image_bytes=len(result.image),
                                checks=sorted(result.manifest["conformance"]),
                                stage_seconds={n: round(t, 2) for n, t in result.stage_seconds})
    assert len(result.image) < 16 * 2**20
    assert benchmark.stats.stats.median <= 60.0


def test_fixed_point_closed_loop_success_within_5_points(benchmark) -> None:
    res = benchmark.pedantic(compare_success, args=(SHIPPED, 50), rounds=1, iterations=1)
    fl, fx = res["float"], res["fixed"]
    benchmark.extra_info.update(float_successes=fl.successes, fixed_successes=fx.successes,
                                episodes=fl.episodes)
    assert abs(fl.success_rate - fx.success_rate) <= 0.05, (fl.successes, fx.successes)
