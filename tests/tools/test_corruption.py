"""The corruption suite (``tests/corruption.py``): a seeded sample of damaged files and bad
options through every verb that reads them in ``make test``; the whole suite, compile
included, in ``make test-all``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.corruption import Outcome, build_cases, make_inputs, run_case, table

SAMPLE = 24  # cases in the default suite: every verb, then a seeded draw of the rest


@pytest.fixture(scope="module")
def inputs(tiny_images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corruption")
    return make_inputs(root, tiny_images["cpu-fixed"], tiny_images["pub"], tiny_images["key"])


def _run(cases) -> list[Outcome]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(run_case, cases))


def _check(outcomes: list[Outcome]) -> None:
    print(table(outcomes))
    bad = [f"{o.case.verb} / {o.case.damage}: {o.verdict} (exit {o.code}), left behind "
           f"{o.left_behind}, output intact {o.kept_intact}: {o.lines[-1:]}"
           for o in outcomes if not o.ok]
    assert not bad, "\n".join(bad)


def test_a_seeded_sample_of_damage_is_refused_in_one_line(inputs, tmp_path: Path) -> None:
    cases = build_cases(inputs, tmp_path, per_kind=6, seed=20261203)
    rng = np.random.default_rng(0)
    first = {}
    for i, c in enumerate(cases):
        first.setdefault(c.verb, i)
    rest = [i for i in range(len(cases)) if i not in first.values()]
    picked = sorted([*first.values(), *rng.choice(rest, SAMPLE - len(first), replace=False)])
    outcomes = _run([cases[i] for i in picked])
    assert {o.case.verb for o in outcomes} >= {"image verify", "image inspect", "run",
                                               "power profile", "data info", "train bc",
                                               "eval"}
    assert sum(o.verdict == "refused" for o in outcomes) >= SAMPLE // 2
    _check(outcomes)


@pytest.mark.slow
def test_the_whole_corruption_suite(inputs, tmp_path: Path) -> None:
    cases = build_cases(inputs, tmp_path, per_kind=30, seed=0, compile_too=True)
    assert len(cases) > 300
    _check(_run(cases))
