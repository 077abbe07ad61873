"""Byte links of the hardware-in-the-loop harness, carrying ``hardware.hil.frames``.

The device end listens: ``serial:pty`` opens a new pseudo-terminal in raw mode (its
``path`` is what the plant opens), ``serial:/dev/ttyX`` a serial port (pyserial), and
``udp:HOST:PORT`` binds a UDP socket (port 0: any free port) and answers whoever sent the
last datagram. The plant end connects: ``serial:PATH`` or ``udp:HOST:PORT``.

``recv(timeout_s)`` waits at most ``timeout_s`` seconds (``None``: for ever) for bytes and
returns the frames completed by them (``Frame`` or ``BadFrame``); ``[]`` on a timeout.
"""

from __future__ import annotations

import os
import select
import socket
import termios
import time
import tty
from typing import Any

from hardware.errors import SpikeflightError
from hardware.hil.frames import BadFrame, Decoder, Frame


class LinkClosed(SpikeflightError):
    """The other end went away."""


class FrameLink:
    """Frames over one file descriptor (a pty, a serial port) or a UDP socket."""

    def __init__(self, fd: int, path: str, sock: socket.socket | None = None,
                 peer: tuple[str, int] | None = None, owned: tuple[Any, ...] = ()) -> None:
        self.fd, self.path, self.sock, self.peer = fd, path, sock, peer
        self._owned = owned
        self._decoder = Decoder()
        self.bytes_sent = self.bytes_received = 0

    def send(self, data: bytes) -> None:
        """Write one encoded frame (``frames.encode``) to the other end."""
        self.bytes_sent += len(data)
        if self.sock is not None:
            if self.peer is not None:
                self.sock.sendto(data, self.peer)
            return
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def recv(self, timeout_s: float | None) -> list[Frame | BadFrame]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return []
            if self.sock is not None:
                data, addr = self.sock.recvfrom(1 << 16)
                self.peer = addr
            else:
                try:
                    data = os.read(self.fd, 1 << 16)
                except OSError as exc:  # EIO: the pty's other side closed
                    raise LinkClosed(f"{self.path}: {exc.strerror}") from None
            if not data:
                raise LinkClosed(f"{self.path}: closed")
            self.bytes_received += len(data)
            got = self._decoder.feed(data)
            if got:
                return got

    def close(self) -> None:
        for obj in self._owned:
            if isinstance(obj, int):
                os.close(obj)
            else:
                obj.close()


def _split(spec: str) -> tuple[str, str]:
    kind, _, rest = spec.partition(":")
    if kind not in ("serial", "udp") or not rest:
        raise SpikeflightError(f"--link {spec!r}: expected serial:pty, serial:/dev/PATH or "
                               "udp:HOST:PORT")
    return kind, rest


def _udp_addr(spec: str, rest: str) -> tuple[str, int]:
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise SpikeflightError(f"--link {spec!r}: expected udp:HOST:PORT")
    return host, int(port)


def listen(spec: str) -> FrameLink:
    """The device end of ``spec`` (see the module docstring)."""
    kind, rest = _split(spec)
    if kind == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(_udp_addr(spec, rest))
        host, port = sock.getsockname()
        return FrameLink(sock.fileno(), f"udp:{host}:{port}", sock=sock, owned=(sock,))
    if rest == "pty":
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass unchanged
        return FrameLink(master, f"serial:{os.ttyname(slave)}", owned=(master, slave))
    return _serial(spec, rest)


def connect(spec: str) -> FrameLink:
    """The plant end of ``spec``: ``serial:PATH`` (a pty or a serial port) or
    ``udp:HOST:PORT``."""
    kind, rest = _split(spec)
    if kind == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return FrameLink(sock.fileno(), spec, sock=sock, peer=_udp_addr(spec, rest),
                         owned=(sock,))
    if rest.startswith("/dev/pts/"):
        try:
            fd = os.open(rest, os.O_RDWR | os.O_NOCTTY)
        except OSError as exc:
            raise SpikeflightError(f"--link {spec!r}: {exc.strerror}") from None
        tty.setraw(fd, termios.TCSANOW)
        return FrameLink(fd, spec, owned=(fd,))
    return _serial(spec, rest)


def _serial(spec: str, path: str) -> FrameLink:
    import serial

    try:
        port = serial.Serial(path, baudrate=115200, timeout=None)
    except serial.SerialException as exc:
        raise SpikeflightError(f"--link {spec!r}: {exc}") from None
    return FrameLink(port.fileno(), spec, owned=(port,))
