"""The host side of the device link: an ``smpclient`` client for a ``--link`` spec and
the few requests ``spikeflight flash`` and ``spikeflight device`` make.

``serial:PATH`` uses smpclient's SMP serial transport (it sizes frames from the
device's MCUmgr parameters); ``udp:HOST:PORT`` its UDP transport, with the datagram size
raised to the device's SMP buffer once the parameters are read (loopback carries large
datagrams; a device advertises what it can take).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from smp import header as smphdr
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import ResetWrite
from smpclient.transport.serial import SMPSerialTransport
from smpclient.transport.udp import IPV4_UDP_OVERHEAD, SMPUDPTransport

from hardware.errors import SpikeflightError
from runtime.smp_group import DeviceReportReadRequest

# smpclient logs every timeout and refused datagram; the CLI reports failures itself, in
# one line, so its records go nowhere unless the caller configures logging.
logging.getLogger("smpclient").addHandler(logging.NullHandler())
MAX_DATAGRAM = 65507 - smphdr.Header.SIZE  # largest UDP payload, less room for a header
T = TypeVar("T")


class LinkError(SpikeflightError):
    """The device did not answer, or answered with an error (its reason included)."""


class DeviceRefused(LinkError):
    """The device declined a request; ``reason`` is its one-line explanation."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"device refused {what}: {reason}")
        self.reason = reason


class _UdpTransport(SMPUDPTransport):
    """smpclient's UDP transport on a given port, its datagrams as large as the device's
    SMP buffer (smpclient's own connect always uses port 1337)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._port = port

    async def connect(self, address: str, timeout_s: float, port: int = 0) -> None:
        await super().connect(address, timeout_s, self._port)

    def initialize(self, smp_server_transport_buffer_size: int) -> None:
        super().initialize(smp_server_transport_buffer_size)
        self._mtu = min(smp_server_transport_buffer_size, MAX_DATAGRAM) + IPV4_UDP_OVERHEAD


def parse_link(spec: str) -> tuple[str, str, int]:
    """``(kind, address, port)`` of ``serial:PATH`` or ``udp:HOST:PORT``."""
    kind, _, rest = spec.partition(":")
    if kind == "serial" and rest and rest != "pty":
        return kind, rest, 0
    if kind == "udp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return kind, host, int(port)
    raise LinkError(f"--link {spec!r}: expected serial:/dev/PATH (the path the device "
                    "agent printed) or udp:HOST:PORT")


def make_client(spec: str, timeout_s: float) -> SMPClient:
    kind, address, port = parse_link(spec)
    transport = SMPSerialTransport() if kind == "serial" else _UdpTransport(port)
    return SMPClient(transport, address, timeout_s=timeout_s)


async def request(client: SMPClient, req: Any, what: str, timeout_s: float | None = None
                  ) -> Any:
    """Send ``req``; its success response, or ``DeviceRefused`` / ``LinkError``."""
    try:
        rsp = await client.request(req, timeout_s=timeout_s)
    except TimeoutError:
        raise LinkError(f"no answer to {what} from {client.address} within "
                        f"{timeout_s or client._timeout_s:g} s") from None
    if error(rsp):
        raise DeviceRefused(what, getattr(rsp, "rsn", None) or f"error {rsp}")
    assert success(rsp)
    return rsp


async def images(client: SMPClient) -> dict[int, Any]:
    """Slot number -> ``ImageState``."""
    rsp = await request(client, ImageStatesRead(), "image state read")
    return {s.slot: s for s in rsp.images}


async def report(client: SMPClient, timeout_s: float | None = None) -> Any:
    return await request(client, DeviceReportReadRequest(), "device report", timeout_s)


async def mark(client: SMPClient, digest: str | None, confirm: bool) -> dict[int, Any]:
    what = "confirm" if confirm and digest is None else "state write"
    rsp = await request(client, ImageStatesWrite(hash=bytes.fromhex(digest) if digest else None,
                                                 confirm=confirm), what)
    return {s.slot: s for s in rsp.images}


async def reset(client: SMPClient, boot_timeout_s: float) -> Any:
    """Reset the device and wait for its boot to finish; the device report after it."""
    await request(client, ResetWrite(), "reset")
    return await report(client, timeout_s=boot_timeout_s)


def run(spec: str, timeout_s: float, job: Callable[[SMPClient], Awaitable[T]]) -> T:
    """Connect, run ``job(client)``, disconnect."""
    async def main() -> T:
        client = make_client(spec, timeout_s)
        try:
            await client.connect()
        except (TimeoutError, OSError) as exc:
            raise LinkError(f"cannot open {spec}: {exc}") from None
        try:
            return await job(client)
        finally:
            await client.disconnect()
    return asyncio.run(main())
