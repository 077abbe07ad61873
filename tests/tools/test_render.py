"""``spikeflight sim render``: an animated GIF where offscreen GL works, a one-line
message where it does not."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.tools.test_data_cli import ROOT, assert_one_line_error, cli


def test_render_writes_animated_gif(tmp_path: Path) -> None:
    out = tmp_path / "cap.gif"
    res = cli("sim", "render", "--task", "cap", "--seed", "0", "--every", "5", "-o", str(out))
    assert res.returncode == 0, res.stderr
    frames = iio.imread(out)
    assert frames.ndim == 4 and frames.shape[1:] == (480, 640, 3) and len(frames) > 3
    assert frames.std() > 10  # a real picture, not a blank frame
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5  # it moves


def test_render_png_frames(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    res = cli("sim", "render", "--task", "cap", "--every", "20", "-o", str(out))
    assert res.returncode == 0, res.stderr
    pngs = sorted(out.glob("frame_*.png"))
    assert len(pngs) >= 2 and iio.imread(pngs[0]).shape == (480, 640, 3)


@pytest.mark.parametrize("backend", ["glfw", "osmesa"])
def test_render_without_gl_says_so_in_one_line(tmp_path: Path, backend: str) -> None:
    """GLFW without a display (and OSMesa, absent from these machines) cannot render."""
    if backend == "osmesa" and ctypes.util.find_library("OSMesa"):
        pytest.skip("OSMesa is installed here, so it can render")
    out = tmp_path / "x.gif"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = subprocess.run([sys.executable, "-m", "tools.cli", "sim", "render", "--task", "cap",
                          "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "MUJOCO_GL": backend}, timeout=120)
    assert_one_line_error(res, "offscreen rendering is not available", f"MUJOCO_GL={backend}")
    assert not out.exists()
