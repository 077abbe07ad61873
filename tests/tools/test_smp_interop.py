"""The device agent against the unmodified third-party ``smpclient`` (serial transport on
a pty, UDP transport on its default port): echo, parameters, upload, list, test, reset,
confirm; and the device's own refusals, reached by a client that checks nothing first."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
from pathlib import Path

import pytest
from smp import packet as smppacket
from smpclient import SMPClient
from smpclient.exceptions import SMPUploadError
from smpclient.generics import error, success
from smpclient.requests.image_management import (
    ImageErase,
    ImageStatesRead,
    ImageStatesWrite,
    ImageUploadWrite,
)
from smpclient.requests.os_management import EchoWrite, MCUMgrParametersRead, ResetWrite
from smpclient.transport.serial import SMPSerialTransport
from smpclient.transport.udp import SMPUDPTransport

from runtime.image import load_image, read_image
from runtime.keys import save_keypair
from tests.fixtures.device import Agent
from tests.fixtures.resign import resign
from tools.smp_client import make_client

SMPCLIENT_UDP_PORT = 1337  # smpclient's UDP transport always connects to this port


def _client(link: str) -> SMPClient:
    kind, _, address = link.partition(":")
    if kind == "serial":
        return SMPClient(SMPSerialTransport(), address, timeout_s=10)
    return SMPClient(SMPUDPTransport(), address.rpartition(":")[0], timeout_s=10)


def _events(storage: Path) -> list[dict]:
    return [json.loads(line) for line in (storage / "events.jsonl").read_text().splitlines()]


async def _interop(link: str, image: bytes) -> dict:
    digest = bytes.fromhex(read_image(image).digest)
    out = {}
    async with _client(link) as client:
        out["echo"] = (await client.request(EchoWrite(d="ping"))).r
        out["buf_size"] = (await client.request(MCUMgrParametersRead())).buf_size
        out["offsets"] = [off async for off in client.upload(image)]
        out["listed"] = (await client.request(ImageStatesRead())).images
        out["tested"] = (await client.request(ImageStatesWrite(hash=digest))).images
        assert success(await client.request(ResetWrite()))
        out["booted"] = (await client.request(ImageStatesRead(), timeout_s=60)).images
        out["confirmed"] = (await client.request(ImageStatesWrite(confirm=True))).images
        assert success(await client.request(ImageErase()))
        out["erased"] = (await client.request(ImageStatesRead())).images
    return out


def _slot(images, n: int):
    return next(s for s in images if s.slot == n)


@pytest.mark.parametrize("link", ["serial:pty", f"udp:127.0.0.1:{SMPCLIENT_UDP_PORT}"])
def test_unmodified_smpclient_uploads_lists_tests_resets_and_confirms(fleet, device_storage,
                                                                      link: str) -> None:
    if link.startswith("udp"):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", SMPCLIENT_UDP_PORT))
        except OSError:
            pytest.skip(f"UDP port {SMPCLIENT_UDP_PORT} is taken on this machine")
        finally:
            probe.close()
    image = load_image(fleet["B"])
    digest = bytes.fromhex(read_image(image).digest)
    with Agent(device_storage, fleet["pub"], "cpu-fixed", link) as dev:
        out = asyncio.run(_interop(dev.link, image))
    assert out["echo"] == "ping" and out["buf_size"] == 16384
    assert out["offsets"][-1] == len(image) and out["offsets"] == sorted(out["offsets"])
    assert _slot(out["listed"], 1).hash == digest and _slot(out["listed"], 0).active
    assert _slot(out["tested"], 1).pending and not _slot(out["tested"], 1).permanent
    booted = _slot(out["booted"], 0)
    assert booted.hash == digest and booted.active and not booted.confirmed
    assert _slot(out["booted"], 1).version == "0.1.0"  # the previous image, to revert to
    assert _slot(out["confirmed"], 0).confirmed
    assert [s.slot for s in out["erased"]] == [0]  # slot 1 (the old image) erased
    primary = json.loads((device_storage / "state.json").read_text())["primary"]
    assert (device_storage / f"bank-{primary}.img").read_bytes() == image  # byte for byte


async def _upload_error(client: SMPClient, image: bytes) -> str:
    with pytest.raises(SMPUploadError) as info:
        async for _ in client.upload(image):
            pass
    return info.value.args[0].rsn


async def _raw_refusals(link: str, fleet, tmp_path: Path) -> dict[str, str]:
    b = load_image(fleet["B"])
    tampered = bytearray(b)
    tampered[len(b) // 2] ^= 0x40
    other, _ = save_keypair(tmp_path / "other")
    low = resign(load_image(fleet["A"]), fleet["key"], version="0.1.1", counter=0)
    out = {}
    async with _client(link) as client:
        for name, image in (("tampered", bytes(tampered)), ("unknown key", resign(b, other)),
                            ("wrong target", load_image(fleet["cpu"])), ("lower counter", low)):
            out[name] = await _upload_error(client, image)
            listed = (await client.request(ImageStatesRead())).images
            out[name + " slots"] = [s.slot for s in listed]
        rsp = await client.request(ImageUploadWrite(off=0, data=b[:512], image=0, len=1 << 30))
        assert error(rsp)
        out["larger than slot"] = rsp.rsn
        # truncated: the first two chunks of C only, then ask for a test boot
        c = load_image(fleet["C"])
        rsp = await client.request(ImageUploadWrite(off=0, data=c[:4096], image=0, len=len(c)))
        rsp = await client.request(ImageUploadWrite(off=rsp.off, data=c[4096:8192]))
        assert success(rsp) and rsp.off == 8192
        rsp = await client.request(ImageStatesWrite(hash=bytes.fromhex(read_image(c).digest)))
        assert error(rsp)
        out["truncated"] = rsp.rsn
        out["final slots"] = (await client.request(ImageStatesRead())).images
    return out


def test_the_device_refuses_what_a_careless_client_sends(fleet, device_storage,
                                                         tmp_path) -> None:
    with Agent(device_storage, fleet["pub"], "cpu-fixed", "serial:pty") as dev:  # B: counter 1
        asyncio.run(_interop(dev.link, load_image(fleet["B"])))
        out = asyncio.run(_raw_refusals(dev.link, fleet, tmp_path))
    assert out["tampered"].startswith("image refused: section '") and "SHA-256" in out["tampered"]
    assert out["unknown key"].startswith("image refused: key: image signed by key id")
    assert out["wrong target"] == "image refused: target class cpu, this device is cpu-fixed"
    assert out["lower counter"] == ("image refused: security counter 0 is lower than the "
                                    "device's 1 (anti-rollback)")
    for name in ("tampered", "unknown key", "wrong target", "lower counter"):
        assert out[name + " slots"] == [0], name  # refused bytes do not stay in slot 1
    assert out["larger than slot"].startswith(f"image of {1 << 30} bytes is larger than the slot")
    assert out["truncated"].startswith("slot 1 holds an incomplete upload (8192 of ")
    slot0 = _slot(out["final slots"], 0)
    assert slot0.version == "0.2.0" and slot0.active and slot0.confirmed
    refused = [e["reason"] for e in _events(device_storage) if e["event"] == "refused"]
    assert len(refused) == 6 and refused[-1] == out["truncated"]


def test_garbage_on_the_link_is_dropped_logged_and_the_next_frame_served(fleet,
                                                                         device_storage) -> None:
    good = bytes(EchoWrite(d="after"))
    with Agent(device_storage, fleet["pub"], "cpu-fixed", "serial:pty") as dev:
        fd = os.open(dev.link.split(":", 1)[1], os.O_RDWR | os.O_NOCTTY)
        try:
            frame = b"".join(smppacket.encode(good))
            bad_crc = bytearray(frame)
            bad_crc[5] ^= 0x01  # still base64, wrong content
            for junk in (b"console noise\n", b"\x06\t!!!not base64!!!\n", bytes(bad_crc)):
                os.write(fd, junk)
        finally:
            os.close(fd)
        async def echo():
            async with _client(dev.link) as client:
                return (await client.request(EchoWrite(d="after"))).r
        assert asyncio.run(echo()) == "after"
    with Agent(device_storage, fleet["pub"], "cpu-fixed") as dev:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        host, port = dev.link.split(":")[1:]
        sock.sendto(b"\x01\x02\x03", (host, int(port)))
        sock.close()
        async def echo_udp():
            async with make_client(dev.link, 10) as client:
                return (await client.request(EchoWrite(d="udp"))).r
        assert asyncio.run(echo_udp()) == "udp"
    garbage = [e["reason"] for e in _events(device_storage) if e["event"] == "garbage"]
    assert any("not SMP dropped" in g for g in garbage)
    assert sum("bad SMP packet dropped" in g for g in garbage) == 2
    assert any("shorter than an SMP header" in g for g in garbage)


def test_malformed_frames_with_a_good_crc_are_refused_not_fatal(fleet, device_storage) -> None:
    """Frames that pass the serial CRC but are no SMP request: too short for a header, a
    body that is not CBOR, a CBOR body that is not a map. Each is answered or dropped with
    a reason, and the agent keeps serving."""
    def frame(op: int, group: int, cmd: int, body: bytes) -> bytes:
        return bytes([op, 0]) + len(body).to_bytes(2, "big") + group.to_bytes(2, "big") + \
            bytes([0, cmd]) + body
    with Agent(device_storage, fleet["pub"], "cpu-fixed", "serial:pty") as dev:
        fd = os.open(dev.link.split(":", 1)[1], os.O_RDWR | os.O_NOCTTY)
        try:
            for bad in (b"\x00\x01", frame(2, 1, 1, b"\xff\xfe"), frame(2, 1, 1, b"\x80")):
                os.write(fd, b"".join(smppacket.encode(bad)))
            # read the error answers off the link until it has been quiet for 1 s
            while select.select([fd], [], [], 1.0)[0]:
                os.read(fd, 4096)
        finally:
            os.close(fd)

        async def echo():
            async with _client(dev.link) as client:
                return (await client.request(EchoWrite(d="still here"))).r
        assert asyncio.run(echo()) == "still here" and dev.alive()
    reasons = [e["reason"] for e in _events(device_storage) if e["event"] in ("garbage",
                                                                             "refused")]
    assert any("shorter than a header" in r for r in reasons)
    assert sum(r.startswith("malformed request: ") for r in reasons) == 2
