"""Write rendered frames as an animated GIF or numbered PNGs, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hardware.errors import SpikeflightError


def write_frames(frames: list[np.ndarray], out: Path, fps: float) -> Path:
    """``out`` ending in ``.gif``: one animated GIF; otherwise a directory of
    ``frame_0000.png``... Files appear only once fully written."""
    out = Path(out)
    if out.suffix.lower() == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".gif", dir=out.parent)
        os.close(fd)
        try:
            iio.imwrite(tmp, np.stack(frames), duration=1000.0 / fps, loop=0)
            os.replace(tmp, out)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return out
    if out.suffix:
        raise SpikeflightError(f"{out}: use a .gif file name or a directory for PNG frames")
    out.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        target = out / f"frame_{i:04d}.png"
        tmp = out / f".{target.name}.partial.png"
        iio.imwrite(tmp, frame)
        os.replace(tmp, target)
    return out
