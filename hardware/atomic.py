"""Atomic file publication: write to a hidden temporary file beside the target, fsync,
then rename over the target (and fsync the directory). Readers see the old file or the
complete new one, never a partial one, whatever happens to the writer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFile:
    """``with AtomicFile(target) as tmp: write(tmp)`` publishes on a clean exit and
    removes the temporary file on an exception; ``commit()``/``abort()`` do the same for
    writers that outlive one block."""

    def __init__(self, target: str | os.PathLike, suffix: str = ".partial",
                 mode: int | None = None) -> None:
        """``mode``: permissions of the published file (default: 0666 less the umask);
        ``mkstemp`` creates the temporary file 0600, so a secret given ``mode=0o600`` is
        never readable by others, not even for a moment."""
        self.mode = mode
        self.target = Path(target)
        if self.target.is_dir():
            raise IsADirectoryError(f"{self.target} is a directory: give a file name")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=suffix,
                                   dir=self.target.parent)
        os.close(fd)
        self.path = Path(tmp)

    def commit(self) -> Path:
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(self.path, 0o666 & ~_umask() if self.mode is None else self.mode)
        os.replace(self.path, self.target)
        dir_fd = os.open(self.target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.target

    def abort(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.commit()
        except BaseException:
            self.abort()  # a publication that failed leaves no temporary file behind
            raise
