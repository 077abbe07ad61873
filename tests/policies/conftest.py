"""Fixtures shared by the policy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.test_data_cli import cli


@pytest.fixture(scope="module")
def hatch_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three expert demonstrations of ``hatch``."""
    out = tmp_path_factory.mktemp("d") / "hatch.hdf5"
    assert cli("data", "collect", "--task", "hatch", "-n", "3", "-o", str(out)).returncode == 0
    return out
