"""Write rendered frames as an animated GIF or numbered PNGs, atomically."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError


def write_frames(frames: list[np.ndarray], out: Path, fps: float) -> Path:
    """``out`` ending in ``.gif``: one animated GIF; otherwise a directory of
    ``frame_0000.png``... Files appear only once fully written."""
    out = Path(out)
    if out.suffix.lower() == ".gif":
        with AtomicFile(out, suffix=".gif") as tmp:
            iio.imwrite(tmp, np.stack(frames), duration=1000.0 / fps, loop=0)
        return out
    if out.suffix:
        raise SpikeflightError(f"{out}: use a .gif file name or a directory for PNG frames")
    out.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        with AtomicFile(out / f"frame_{i:04d}.png", suffix=".png") as tmp:
            iio.imwrite(tmp, frame)
    return out
