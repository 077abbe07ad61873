"""Environment speed (pytest-benchmark): control steps per second per core, every task.

Run with ``make bench`` (or ``pytest benchmarks --benchmark-enable``). Target (issue 2):
>= 2,000 control steps per second per core; the median is in ``extra_info``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim.registry import TASKS, make_env

STEPS = 500


@pytest.mark.parametrize("task", list(TASKS))
def test_env_steps(benchmark, task: str) -> None:
    env = make_env(task)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(STEPS, 7))
    env.reset(seed=0)

    def run() -> None:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()

    benchmark.pedantic(run, rounds=7, iterations=1, warmup_rounds=1)
    steps_per_s = STEPS / benchmark.stats.stats.median
    benchmark.extra_info["median_steps_per_s"] = round(steps_per_s)
    assert steps_per_s >= 2000, f"{task}: {steps_per_s:.0f} control steps/s < 2,000"
