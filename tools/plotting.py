"""Matplotlib without a display, and PNGs published atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardware.atomic import AtomicFile


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` atomically (never a partial PNG) and close it."""
    with AtomicFile(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
