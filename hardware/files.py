"""Reading input files that spikeflight did not necessarily write: only regular files, and
no more bytes than the kind of file can sensibly hold, so that a FIFO, a device such as
``/dev/zero`` or a directory is refused in one line instead of hanging the command or
filling memory. And checking output paths before any work (``writable_output``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hardware.errors import SpikeflightError

MiB = 1 << 20


class OutputError(SpikeflightError):
    """An output path that cannot be written; raised before any work is done."""


def writable_output(path: str | os.PathLike, what: str) -> Path:
    """``path`` checked as an output file before any work: not a directory, and its
    directory (the nearest one that exists, since missing ones are created) writable."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{what} {p} is a directory: give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{what} {p} is not writable")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {p}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {p}: cannot write in {parent}")
    return p


def regular_file(path: str | os.PathLike, what: str, max_bytes: int | None = None) -> int:
    """The size in bytes of ``path`` after checking that it is a regular file (symbolic
    links followed) of at most ``max_bytes``; ``OSError`` subclasses with a one-line
    message naming ``what`` otherwise (``FileNotFoundError`` when it does not exist)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {p} not found") from None
    except OSError as exc:
        raise OSError(f"cannot read {what} {p}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{what} {p} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else \
            "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise OSError(f"{what} {p} is {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise OSError(f"{what} {p} is {st.st_size:,} bytes, more than the {max_bytes:,} "
                      "such a file may hold")
    return st.st_size


def read_input(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``regular_file``); never
    more than ``max_bytes`` are read, even if the file grows meanwhile."""
    regular_file(path, what, max_bytes)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise OSError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise OSError(f"{what} {path} grew past {max_bytes:,} bytes while being read")
    return data
