"""HIL link frames: exact round trip, every single-bit error caught, resynchronisation."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.hil import frames
from hardware.hil.frames import BadFrame, Decoder, Frame


def test_arrays_round_trip_bit_for_bit_in_split_reads() -> None:
    obs = np.array([1.0, -0.0, 5e-324, np.pi, -1e300])
    data = frames.encode("sensor", 7, 0.35, obs=obs, term=False, trunc=True, success=False)
    assert b"\x00" not in data[:-1] and data[-1:] == b"\x00"
    dec = Decoder()
    got = [f for i in range(len(data)) for f in dec.feed(data[i:i + 1])]
    assert len(got) == 1 and isinstance(got[0], Frame)
    f = got[0]
    assert (f.type, f.seq, f.t, f["trunc"]) == ("sensor", 7, 0.35, True)
    assert f["obs"].tobytes() == obs.astype("<f8").tobytes()


def test_every_single_bit_flip_is_refused_and_the_next_frame_is_read() -> None:
    raw = frames.payload("actuator", 3, 0.15, action=np.linspace(-1, 1, 7))
    for bit in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        got = Decoder().feed(frames.wire(bytes(bad)) + frames.encode("bye", 0, 0.0))
        assert isinstance(got[0], BadFrame), bit
        assert isinstance(got[1], Frame) and got[1].type == "bye"


def test_garbage_and_malformed_payloads_are_bad_frames_with_a_reason() -> None:
    dec = Decoder()
    out = dec.feed(b"\x05\x01\x02\x00" + frames.wire(b"\xa0" + b"\x00" * 0) +
                   frames.wire(frames.payload("bye", 0, 0.0)[:-4] + b"\x00\x00\x00\x00"))
    assert all(isinstance(f, BadFrame) for f in out) and len(out) == 3
    assert "CRC mismatch" in str(out[2])
    with pytest.raises(ValueError, match="frame type must be one of"):
        frames.encode("hello", 0, 0.0)
