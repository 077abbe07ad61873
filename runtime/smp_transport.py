"""The device's side of mcumgr's SMP transports: the SMP serial transport on a pty or a
serial port, and SMP over UDP.

Serial: each SMP frame travels as lines of at most ``LINE_LENGTH`` bytes (start
delimiter 0x06 0x09 or continuation 0x04 0x14, base64 of length + frame + CRC16, newline),
encoded and decoded by the ``smp`` package (``smp.packet``). A line that is not SMP, or an
SMP packet with a bad delimiter, base64 or CRC, is dropped and reported to ``on_garbage``;
the next good frame is served normally. UDP: one datagram per frame, or several that the
frame's header length says belong together.

A link yields ``(frame, reply)`` pairs: ``reply(response_frame)`` sends the answer to
whoever asked.
"""

from __future__ import annotations

import binascii
import os
import socket
import struct
import tty
from collections.abc import Callable, Iterator

from smp import header as smphdr
from smp import packet as smppacket
from smp.exceptions import SMPBadContinueDelimiter, SMPBadCRC, SMPBadStartDelimiter

LINE_LENGTH = 127  # bytes per serial line, the SMP serial convention
Reply = Callable[[bytes], None]
Garbage = Callable[[str], None]
_BAD = (SMPBadCRC, SMPBadStartDelimiter, SMPBadContinueDelimiter, binascii.Error,
        struct.error, ValueError)


class SerialLink:
    """``pty``: a new pseudo-terminal in raw mode (``path`` is what a client opens);
    otherwise the path of a serial port, opened with pyserial at ``baudrate``."""

    def __init__(self, port: str, on_garbage: Garbage, baudrate: int = 115200) -> None:
        self.on_garbage = on_garbage
        self._serial = None
        if port == "pty":
            self._fd, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line discipline: bytes pass unchanged
            self.path = os.ttyname(self._slave)
        else:
            import serial

            self._serial = serial.Serial(port, baudrate=baudrate, timeout=None)
            self._fd, self._slave, self.path = self._serial.fileno(), None, port

    def _read(self) -> bytes:
        return os.read(self._fd, 1 << 16)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def reply(self, frame: bytes) -> None:
        self._write(b"".join(smppacket.encode(frame, line_length=LINE_LENGTH)))

    def frames(self) -> Iterator[tuple[bytes, Reply]]:
        buf = bytearray()
        decoder = None
        while True:
            chunk = self._read()
            if not chunk:
                return
            buf += chunk
            while (end := buf.find(b"\n")) >= 0:
                line, buf = bytes(buf[:end + 1]), buf[end + 1:]
                head = line[:smppacket.DELIMITER_SIZE]
                if head == smppacket.START_DELIMITER:
                    if decoder is not None:
                        self.on_garbage("serial: SMP frame cut short by a new one")
                    decoder = smppacket.decode()
                    next(decoder)
                elif head != smppacket.CONTINUE_DELIMITER or decoder is None:
                    self.on_garbage(f"serial: {len(line)}-byte line that is not SMP dropped")
                    continue
                try:
                    decoder.send(line)
                except StopIteration as done:
                    decoder = None
                    yield bytes(done.value), self.reply
                except _BAD as exc:
                    decoder = None
                    self.on_garbage(f"serial: bad SMP packet dropped ({exc})")

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
        else:
            os.close(self._fd)
            os.close(self._slave)


class UdpLink:
    """SMP over UDP, bound to ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, host: str, port: int, on_garbage: Garbage) -> None:
        self.on_garbage = on_garbage
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()
        self.path = f"udp:{self.host}:{self.port}"

    def frames(self) -> Iterator[tuple[bytes, Reply]]:
        partial: dict[tuple, bytearray] = {}
        while True:
            data, addr = self.sock.recvfrom(1 << 16)
            buf = partial.pop(addr, bytearray()) + data
            if len(buf) < smphdr.Header.SIZE:
                self.on_garbage(f"udp: {len(buf)}-byte datagram is shorter than an SMP header")
                continue
            need = smphdr.Header.SIZE + int.from_bytes(buf[2:4], "big")
            if len(buf) < need:
                partial[addr] = buf
                continue
            if len(buf) > need:
                self.on_garbage(f"udp: {len(buf) - need} bytes after an SMP frame dropped")
            yield bytes(buf[:need]), lambda frame, a=addr: self.sock.sendto(frame, a)

    def close(self) -> None:
        self.sock.close()


def open_link(spec: str, on_garbage: Garbage) -> SerialLink | UdpLink:
    """``serial:pty``, ``serial:/dev/ttyX`` or ``udp:HOST:PORT``."""
    kind, _, rest = spec.partition(":")
    if kind == "serial" and rest:
        return SerialLink(rest, on_garbage)
    if kind == "udp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return UdpLink(host, int(port), on_garbage)
    raise ValueError(f"--link {spec!r}: expected serial:pty, serial:/dev/ttyX or "
                     "udp:HOST:PORT")
