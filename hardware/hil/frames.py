"""Frames of the hardware-in-the-loop link between the plant and the device.

On the wire a frame is ``COBS(payload || CRC-32(payload)) || 0x00``: the payload is a CBOR
map (``cbor2``), the CRC is zlib's CRC-32 (IEEE 802.3) of the payload, big-endian, and COBS
(``cobs``) removes every zero byte so that a single 0x00 delimits frames and a receiver
that lost bytes resynchronises at the next delimiter.

Every payload has ``type``, ``seq`` (the control tick of the episode, 0 at reset) and ``t``
(the plant's mission time, s). Types and their fields:

- ``start`` (plant -> device): ``seed``, ``obs`` (float64 bytes), ``max_steps``,
  ``act_dim``, ``dt`` (s), ``budget_scale``: an episode begins; the device answers with
  ``actuator`` seq 0.
- ``sensor`` (plant -> device): ``obs``, ``term``, ``trunc``, ``success``,
  ``budget_scale`` (the fraction of the nominal power budget granted): the plant's state
  after tick ``seq``; unless the episode ended, the device answers ``actuator`` with
  the same ``seq``.
- ``actuator`` (device -> plant): ``action`` (float64 bytes), ``planned`` (bool: the
  action's chunk was planned on this tick's observation).
- ``bye`` (plant -> device): no more episodes; the device answers ``report`` with its
  summary (``summary``, a map); the plant acknowledges it with ``bye`` seq 1 and the
  device stops.

Arrays travel as little-endian float64 bytes, so observations and actions arrive bit for
bit as sent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import cbor2
import numpy as np
from cobs import cobs

TYPES = ("start", "sensor", "actuator", "bye", "report")
ARRAYS = ("obs", "action")
CRC_BYTES = 4


@dataclass
class Frame:
    """A decoded frame: ``type``, ``seq``, ``t`` (s) and the other fields (arrays as
    float64 numpy arrays)."""

    type: str
    seq: int
    t: float
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


class BadFrame(ValueError):
    """A frame that failed COBS, CRC or payload checks (never acted on)."""


def payload(kind: str, seq: int, t: float, **fields: Any) -> bytes:
    """The CBOR payload plus its CRC-32: what COBS encodes."""
    if kind not in TYPES:
        raise ValueError(f"frame type must be one of {', '.join(TYPES)}, got {kind!r}")
    body = {"type": kind, "seq": int(seq), "t": float(t)}
    for key, value in fields.items():
        body[key] = (np.ascontiguousarray(value, "<f8").tobytes() if key in ARRAYS
                     else value)
    data = cbor2.dumps(body)
    return data + zlib.crc32(data).to_bytes(CRC_BYTES, "big")


def wire(data: bytes) -> bytes:
    """COBS-encode a payload-plus-CRC and append the 0x00 delimiter."""
    return cobs.encode(data) + b"\x00"


def encode(kind: str, seq: int, t: float, **fields: Any) -> bytes:
    """The bytes of one frame on the wire."""
    return wire(payload(kind, seq, t, **fields))


def decode_payload(data: bytes) -> Frame:
    """A payload-plus-CRC (COBS already removed) as a ``Frame``; ``BadFrame`` with the
    reason if the CRC or the payload is wrong."""
    if len(data) <= CRC_BYTES:
        raise BadFrame(f"{len(data)}-byte frame is too short")
    body, crc = data[:-CRC_BYTES], int.from_bytes(data[-CRC_BYTES:], "big")
    if zlib.crc32(body) != crc:
        raise BadFrame("CRC mismatch")
    try:
        obj = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise BadFrame(f"payload is not CBOR ({exc})") from None
    if not (isinstance(obj, dict) and obj.get("type") in TYPES
            and isinstance(obj.get("seq"), int) and isinstance(obj.get("t"), float)):
        raise BadFrame("payload lacks type, seq or t")
    fields = {k: v for k, v in obj.items() if k not in ("type", "seq", "t")}
    for key in ARRAYS:
        if key in fields:
            raw = fields[key]
            if not isinstance(raw, bytes) or len(raw) % 8:
                raise BadFrame(f"{key} is not float64 bytes")
            fields[key] = np.frombuffer(raw, "<f8").copy()
    return Frame(obj["type"], obj["seq"], obj["t"], fields)


class Decoder:
    """Splits a byte stream at 0x00 delimiters: ``feed(data)`` returns the complete frames
    in it, each a ``Frame`` or a ``BadFrame`` (bad COBS, CRC or payload)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        self._buf += data
        out: list[Frame | BadFrame] = []
        while (end := self._buf.find(b"\x00")) >= 0:
            chunk, self._buf = bytes(self._buf[:end]), self._buf[end + 1:]
            if not chunk:
                continue
            try:
                out.append(decode_payload(cobs.decode(chunk)))
            except cobs.DecodeError as exc:
                out.append(BadFrame(f"bad COBS ({exc})"))
            except BadFrame as exc:
                out.append(exc)
        return out
