"""Expert success over the full 100 seeds (0..99) per task: target >= 95%."""

from __future__ import annotations

import pytest

from hardware.sim.registry import TASKS
from tools.bench import expert_success


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_success_100_seeds(benchmark, task: str) -> None:
    ok, length = benchmark.pedantic(expert_success, args=(task, list(range(100))), rounds=1,
                                    iterations=1)
    benchmark.extra_info.update(successes=ok, mean_length=round(length, 1))
    assert ok >= 95, f"{task}: expert succeeded on {ok}/100 seeds"
