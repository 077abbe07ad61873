"""A checkpoint whose config.json breaks its contract is refused in one line naming the
field (``PolicyConfig.from_dict``: pydantic over the config's annotated fields), by the
library and by every verb that loads it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from policies.checkpoint import load_policy
from policies.config import ConfigError
from tests.fixtures.device import SPIKEFLIGHT
from tests.fixtures.tiny_policy import train_tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("contract") / "run", "sdp", iterations=5)


CASES = [
    ({"obs_dim": None}, "policy.obs_dim: Field required"),
    ({"micro_steps": 0}, "policy.micro_steps: Input should be greater than or equal to 2"),
    ({"hidden": ["wide", 8]}, "policy.hidden.0: Input should be a valid integer"),
    ({"hidden": []}, "policy.hidden: Tuple should have at least 1 item"),
    ({"lif_beta": float("nan")}, "policy.lif_beta: Input should be a finite number"),
    ({"reset": "subtract"}, "only reset='zero'"),
    ({"kind": "synaptic"}, "policy kind must be one of sdp, sdp-sdli, ann"),
]


def _edited(run: Path, tmp_path: Path, change: dict) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    cfg = json.loads((bad / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            cfg["policy"].pop(key)
        else:
            cfg["policy"][key] = value
    (bad / "config.json").write_text(json.dumps(cfg))
    return bad


@pytest.mark.parametrize(("change", "why"), CASES)
def test_a_config_that_breaks_the_contract_is_refused_by_field(run: Path, tmp_path: Path,
                                                               change: dict, why: str) -> None:
    with pytest.raises(ConfigError, match="^policy") as exc:
        load_policy(_edited(run, tmp_path, change))
    assert why in str(exc.value) and "\n" not in str(exc.value)


def test_compile_and_eval_report_it_in_one_line(run: Path, tmp_path: Path) -> None:
    bad = _edited(run, tmp_path, {"micro_steps": 0})
    key = subprocess.run([SPIKEFLIGHT, "keys", "generate", "-o", str(tmp_path / "k")],
                         capture_output=True, text=True, timeout=60)
    assert key.returncode == 0, key.stderr
    for args in (["eval", str(bad), "--episodes", "1"],
                 ["compile", str(bad), "--target", "cpu", "--key", str(tmp_path / "k"),
                  "-o", str(tmp_path / "x.sfimg")]):
        res = subprocess.run([SPIKEFLIGHT, *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
        assert "policy.micro_steps: Input should be greater than or equal to 2" in res.stderr
    assert not (tmp_path / "x.sfimg").exists()
