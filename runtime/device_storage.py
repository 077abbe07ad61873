"""The device's storage: two image banks, a record per bank and the boot state, each
written so that a power cut at any instant leaves a consistent record.

Layout of ``--storage DIR``::

    bank-a.img, bank-b.img      image bytes (one bank is slot 0, the other slot 1)
    bank-a.json, bank-b.json    bank record: declared length, SHA-256 of the whole upload,
                                bytes written and synced
    state.json                  boot state (:class:`BootState`), MCUboot's trailer flags
    events.jsonl                the device's event log, one JSON object per line

Records and state are replaced atomically (write a temporary file, fsync, rename, fsync
the directory), so a reader finds the old or the new one, never a mix. Slot 0 is the bank
``BootState.primary`` names; swapping slots is one atomic state write that renames
nothing, the A/B equivalent of MCUboot's swap with its copy-done flag. Bank bytes are
written in place and synced every ``SYNC_BYTES`` and at the end; the record then says how
many bytes are durable, and an upload resumes from there after a power cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from runtime.failpoints import failpoint

BANKS = ("a", "b")
SYNC_BYTES = 64 * 1024  # bank bytes written between fsyncs of an upload
STATE_VERSION = 1


class StorageError(SpikeflightError):
    """The device's storage is unreadable (named file and reason)."""


@dataclass
class BootState:
    """MCUboot's trailer state, for the pair of slots.

    ``primary``: the bank that is slot 0 (``None``: nothing installed yet). ``trial``:
    ``None`` when slot 0 is confirmed; ``"test"`` when it was swapped in for a trial boot
    and is not confirmed yet (a reset reverts it, as MCUboot does when ``image_ok`` is
    unset); ``"permanent"`` the same, but the device confirms it itself once its
    self-test passes. ``pending``: slot 1 is marked for the next boot (``"test"`` or
    ``"permanent"``). ``security_counter``: the highest SEC_CNT confirmed on this device;
    an image with a lower one is refused. ``seq`` counts state writes.
    """

    primary: str | None = None
    trial: str | None = None
    pending: str | None = None
    security_counter: int = 0
    seq: int = 0
    version: int = STATE_VERSION

    @property
    def secondary(self) -> str:
        return "b" if self.primary in (None, "a") else "a"


@dataclass
class BankRecord:
    """What a bank holds: ``length`` bytes declared by the upload that filled it, their
    SHA-256 (hex, ``""`` if the client sent none) and ``written`` bytes synced."""

    length: int = 0
    sha256: str = ""
    written: int = 0

    @property
    def complete(self) -> bool:
        return self.length > 0 and self.written == self.length


@dataclass
class Storage:
    root: Path
    slot_size: int
    _fds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    # --- records -----------------------------------------------------------------------
    def _read_json(self, name: str) -> dict[str, Any] | None:
        path = self.root / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StorageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(obj, dict):
            raise StorageError(f"{path}: expected a JSON object")
        return obj

    def _publish(self, name: str, obj: dict[str, Any], phase: str) -> None:
        failpoint(phase)
        with AtomicFile(self.root / name) as tmp:
            tmp.write_text(json.dumps(obj, sort_keys=True), encoding="utf-8")
            failpoint(phase)
        failpoint(phase)

    def load_state(self) -> BootState:
        obj = self._read_json("state.json")
        if obj is None:
            return BootState()
        try:
            state = BootState(**obj)
        except TypeError as exc:
            raise StorageError(f"{self.root / 'state.json'}: {exc}") from None
        if state.version != STATE_VERSION or state.primary not in (None, *BANKS):
            raise StorageError(f"{self.root / 'state.json'}: unknown state {obj}")
        return state

    def save_state(self, state: BootState, phase: str) -> None:
        state.seq += 1
        self._publish("state.json", asdict(state), phase)

    def record(self, bank: str) -> BankRecord:
        obj = self._read_json(f"bank-{bank}.json")
        if obj is None:
            return BankRecord()
        try:
            return BankRecord(**obj)
        except TypeError as exc:
            raise StorageError(f"{self.root / f'bank-{bank}.json'}: {exc}") from None

    # --- bank bytes --------------------------------------------------------------------
    def bank_path(self, bank: str) -> Path:
        return self.root / f"bank-{bank}.img"

    def read_bank(self, bank: str) -> bytes:
        """The bytes of ``bank`` its record vouches for."""
        rec = self.record(bank)
        try:
            with open(self.bank_path(bank), "rb") as fh:
                return fh.read(rec.written)
        except FileNotFoundError:
            return b""

    def bank_sha256(self, bank: str) -> str:
        return hashlib.sha256(self.read_bank(bank)).hexdigest()

    def _fd(self, bank: str) -> int:
        if bank not in self._fds:
            self._fds[bank] = os.open(self.bank_path(bank), os.O_RDWR | os.O_CREAT, 0o644)
        return self._fds[bank]

    def begin_upload(self, bank: str, length: int, sha256: str) -> None:
        """Forget what ``bank`` held and expect ``length`` bytes: the record goes first,
        so a power cut never leaves old bytes vouched for by a new record."""
        self._publish(f"bank-{bank}.json", asdict(BankRecord(length, sha256, 0)), "upload")
        os.ftruncate(self._fd(bank), 0)

    def write(self, bank: str, offset: int, data: bytes) -> None:
        failpoint("upload")
        os.pwrite(self._fd(bank), data, offset)

    def sync(self, bank: str, written: int) -> None:
        """Make ``written`` bytes of ``bank`` durable and record them."""
        failpoint("upload")
        os.fsync(self._fd(bank))
        rec = self.record(bank)
        rec.written = written
        self._publish(f"bank-{bank}.json", asdict(rec), "upload")

    def resume_offset(self, bank: str) -> int:
        """Where an interrupted upload into ``bank`` continues: its synced bytes (anything
        after them may not have survived the cut and is cut off)."""
        rec = self.record(bank)
        os.ftruncate(self._fd(bank), rec.written)
        return rec.written

    def erase(self, bank: str) -> None:
        self._publish(f"bank-{bank}.json", asdict(BankRecord()), "upload")
        os.ftruncate(self._fd(bank), 0)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # --- event log ---------------------------------------------------------------------
    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event to ``events.jsonl`` (synced) and echo it on stderr."""
        rec = {"t": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(rec, sort_keys=True, default=str)
        with open(self.root / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        print(f"device: {line}", file=sys.stderr, flush=True)
        return rec

    def events(self, last: int = 20) -> list[dict[str, Any]]:
        """The last ``last`` events (a torn last line after a power cut is skipped)."""
        try:
            lines = (self.root / "events.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[-last - 1:]:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out[-last:]
