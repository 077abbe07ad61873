"""Session-wide tiny trained policies (one per kind) for the compiler tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny_policy import train_tiny


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: train_tiny(root / kind, kind) for kind in ("sdp", "sdp-sdli", "ann")}
