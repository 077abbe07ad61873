"""Single-event upsets in the device's weight memory: the scrubber that finds and repairs
them, and the output plausibility check that guards the chunks in between.

The backends compute with the image's weight sections held in RAM (``net.npz``,
``core.npz``, ``tensors.bin``: ``runtime.backends.EXTERNAL_DATA``). At boot, once the image
has verified, ``WeightMemory`` records a CRC-32 (zlib) of every ``BLOCK_BYTES`` block of
each section; the verified image in flash is the repair source. Every ``scrub_ticks``
control ticks the scrubber recomputes the CRC of every block; a block that differs is
copied back from flash and the backend restarts on the repaired memory. An upset is thus
detected at most one scrub period after it happened; its detection latency (ticks from the
upset to the scrub that found it) is recorded.

Between scrubs ``plausible(chunk, rates)`` guards every chunk: one whose values are not
finite, or in which a population fired at more than ``RATE_CEIL`` spikes per neuron per
micro-step (corrupted weights drive populations into saturation), is not executed (the
executive holds position) and triggers a scrub at once.

Injection (the HIL ``seu`` scenario, a test hook of ``device fly``): every control tick, with
probability ``rate_hz * dt``, one random bit of the weight memory flips and the backend
restarts on the corrupted memory (what it computes with is what RAM holds). Seeded, so a run
is repeatable.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from runtime.backends import EXTERNAL_DATA
from runtime.loader import FlightPolicy

BLOCK_BYTES = 4096
SCRUB_TICKS = 10  # default scrub period (control ticks: 0.5 s at 20 Hz)
RATE_CEIL = 0.95  # spikes per neuron per micro-step above which a population is saturated


@dataclass
class Upset:
    tick: int
    section: str
    bit: int
    detected_tick: int | None = None


@dataclass
class ScrubCounters:
    upsets: list[Upset] = field(default_factory=list)
    scrubs: int = 0
    blocks_repaired: int = 0
    implausible_chunks: int = 0

    def to_dict(self) -> dict[str, object]:
        found = [u for u in self.upsets if u.detected_tick is not None]
        return {"upsets_injected": len(self.upsets), "upsets_detected": len(found),
                "upsets_repaired": len(found), "scrubs": self.scrubs,
                "blocks_repaired": self.blocks_repaired,
                "implausible_chunks": self.implausible_chunks,
                "detection_latency_ticks": [u.detected_tick - u.tick for u in found],
                "upsets": [vars(u) for u in self.upsets]}


class WeightMemory:
    """RAM copy of ``policy``'s weight sections with golden per-block CRCs; ``restart()``
    restarts the backend on ``policy.image.sections`` (which this class keeps equal to
    RAM)."""

    def __init__(self, policy: FlightPolicy, restart: Callable[[], None],
                 scrub_ticks: int = SCRUB_TICKS,
                 rate_hz: float = 0.0, dt: float = 0.05, seed: int = 0) -> None:
        if scrub_ticks < 1:
            raise ValueError(f"scrub period must be >= 1 tick, got {scrub_ticks}")
        self.policy, self.restart = policy, restart
        self.scrub_ticks, self.p_upset = scrub_ticks, rate_hz * dt
        self.rng = np.random.default_rng([seed, 0x5E])
        sections = policy.image.sections
        self.names = [n for n in EXTERNAL_DATA if n in sections]
        self.flash = {n: bytes(sections[n]) for n in self.names}
        self.ram = {n: bytearray(self.flash[n]) for n in self.names}
        self.golden = {n: self._crcs(self.flash[n]) for n in self.names}
        self.c = ScrubCounters()
        self.tick = 0

    @staticmethod
    def _crcs(data: bytes | bytearray) -> list[int]:
        view = memoryview(data)
        return [zlib.crc32(view[i:i + BLOCK_BYTES]) for i in range(0, len(view), BLOCK_BYTES)]

    def _load(self) -> None:
        for n in self.names:
            self.policy.image.sections[n] = bytes(self.ram[n])
        self.restart()

    def inject(self) -> Upset:
        """Flip one random bit of the weight memory (and compute with it from now on)."""
        sizes = np.array([len(self.ram[n]) for n in self.names], np.int64)
        bit = int(self.rng.integers(int(sizes.sum()) * 8))
        i = int(np.searchsorted(np.cumsum(sizes) * 8, bit, side="right"))
        name, local = self.names[i], bit - int(sizes[:i].sum()) * 8
        self.ram[name][local // 8] ^= 1 << (local % 8)
        upset = Upset(self.tick, name, local)
        self.c.upsets.append(upset)
        self._load()
        return upset

    def scrub(self) -> int:
        """Compare every block with its golden CRC, repair the bad ones from flash; the
        number of blocks repaired."""
        self.c.scrubs += 1
        bad = []
        for n in self.names:
            for b, (got, want) in enumerate(zip(self._crcs(self.ram[n]), self.golden[n],
                                                 strict=True)):
                if got != want:
                    lo = b * BLOCK_BYTES
                    self.ram[n][lo:lo + BLOCK_BYTES] = self.flash[n][lo:lo + BLOCK_BYTES]
                    bad.append((n, b))
        if bad:
            self.c.blocks_repaired += len(bad)
            for u in self.c.upsets:
                if u.detected_tick is None and (u.section, u.bit // 8 // BLOCK_BYTES) in bad:
                    u.detected_tick = self.tick
            self._load()
        return len(bad)

    def on_tick(self) -> None:
        """Call once per control tick: maybe an upset (injection), the periodic scrub."""
        self.tick += 1
        if self.p_upset and self.rng.random() < self.p_upset:
            self.inject()
        if self.tick % self.scrub_ticks == 0:
            self.scrub()

    def plausible(self, chunk: np.ndarray, rates: list[float]) -> bool:
        """The output check between scrubs (see the module docstring); an implausible chunk
        triggers a scrub now."""
        if np.isfinite(chunk).all() and all(r <= RATE_CEIL for r in rates):
            return True
        self.c.implausible_chunks += 1
        self.scrub()
        return False
