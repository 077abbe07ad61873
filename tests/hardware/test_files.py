"""Input files are regular files of a bounded size: FIFOs, devices and directories are
refused in one line before anything is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hardware.atomic import AtomicFile
from hardware.files import OutputError, read_input, regular_file, writable_output


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    assert regular_file(f, "thing") == 100 and read_input(f, "thing", 100) == b"x" * 100


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: os.mkfifo(p), "is a FIFO, not a regular file"),
    (lambda p: p.mkdir(), "is a directory, not a file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a device, not a regular file"),
    (lambda p: p.write_bytes(b"y" * 101), "is 101 bytes, more than the 100"),
])
def test_odd_files_are_refused_by_name(tmp_path: Path, make, why: str) -> None:
    p = tmp_path / "odd"
    make(p)
    with pytest.raises(OSError, match=why) as exc:
        read_input(p, "image file", 100)
    assert str(exc.value).startswith(f"image file {p}") and "\n" not in str(exc.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="demonstration file .* not found"):
        regular_file(tmp_path / "none.hdf5", "demonstration file")


def test_outputs_are_checked_before_any_work(tmp_path: Path) -> None:
    assert writable_output(tmp_path / "new" / "deeper" / "out.csv", "--csv").name == "out.csv"
    with pytest.raises(OutputError, match="--csv .* is a directory: give a file name"):
        writable_output(tmp_path, "--csv")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to check
            return
        with pytest.raises(OutputError, match="cannot write in"):
            writable_output(locked / "out.json", "--json")
    finally:
        locked.chmod(0o700)


def test_atomic_publication_refuses_a_directory_and_leaves_no_temporary_file(
        tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory: give a file name"):
        AtomicFile(tmp_path)
    target = tmp_path / "out.txt"
    with pytest.raises(OSError), AtomicFile(target) as tmp:
        tmp.write_text("x")
        target.mkdir()  # the rename over it fails at publication
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and target.is_dir()
