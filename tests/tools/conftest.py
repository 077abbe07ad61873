"""Images and a provisioned device storage for the flashing tests: the tiny policy's
cpu-fixed image A (0.1.0, counter 0), B (0.2.0, counter 1), C (0.3.0, counter 2), and a
storage directory where A was flashed and confirmed through the real agent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.image import load_image, write_image
from tests.fixtures.device import Agent, cli
from tests.fixtures.resign import resign


@pytest.fixture(scope="session")
def fleet(tiny_images, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fleet")
    a = load_image(tiny_images["cpu-fixed"])
    out = {"key": tiny_images["key"], "pub": tiny_images["pub"], "A": tiny_images["cpu-fixed"],
           "cpu": tiny_images["cpu"], "loihi2": tiny_images["loihi2"]}
    for name, version, counter in (("B", "0.2.0", 1), ("C", "0.3.0", 2)):
        out[name] = write_image(root / f"{name}.sfimg",
                                resign(a, tiny_images["key"], version=version, counter=counter))
    storage = root / "provisioned"
    with Agent(storage, out["pub"], "cpu-fixed") as dev:
        res = cli("flash", out["A"], "--link", dev.link, "--confirm")
        assert res.returncode == 0, res.stdout + res.stderr
    out["provisioned"] = storage
    return out


@pytest.fixture
def device_storage(fleet, tmp_path: Path) -> Path:
    """A fresh copy of the provisioned storage (A running, confirmed)."""
    dst = tmp_path / "device"
    shutil.copytree(fleet["provisioned"], dst)
    return dst
