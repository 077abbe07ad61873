"""Flashing a device: upload a signed image to a device agent over SMP, verify it, and
optionally boot it on trial (``--test``) or boot and confirm it (``--confirm``).

Steps: read the device's slots and report; refuse early what the device would refuse
(target class, security counter); upload to slot 1 with smpclient (the device answers the
first chunk with the offset it already holds when the same image was partly uploaded
before, so an interrupted flash resumes there); verify after write (slot 1's hash, the
SHA-256 TLV, must equal the image's); then for ``--test``/``--confirm`` mark slot 1 for
test, reset, and read the boot report: the device swapped, verified and self-tested the
image, or reverted and says why. ``--confirm`` then confirms it. One summary line at the
end; ``--dry-run`` prints the plan and changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from smpclient.exceptions import SMPUploadError
from smpclient.requests.image_management import ImageUploadWrite

from hardware.errors import SpikeflightError
from tools import smp_client
from tools.progress import ByteProgress

BOOT_TIMEOUT_S = 120.0  # a reboot verifies and self-tests an image (Lava: seconds)


def _plan(path: Path, img: Any, slots: dict[int, Any], rep: Any, mode: str) -> dict[str, Any]:
    old = slots.get(0)
    h = img.header
    return {"image": str(path), "bytes": img.size, "digest": img.digest, "target": h.target,
            "version": h.version, "security_counter": h.security_counter, "mode": mode,
            "key_id": img.key_id, "device_key_id": rep.key_id, "device_target": rep.target,
            "device_security_counter": rep.security_counter,
            "slot": 1, "old_version": old.version if old else None,
            "old_digest": old.hash.hex() if old and old.hash else None}


def _precheck(plan: dict[str, Any], slot_size: int) -> None:
    """Refuse before sending a byte what the device would refuse after the upload."""
    if plan["key_id"] != plan["device_key_id"]:
        raise smp_client.DeviceRefused("the image", f"signed by key {plan['key_id'][:16]}, the "
                                       f"device accepts only {plan['device_key_id'][:16]}")
    if plan["target"] != plan["device_target"]:
        raise smp_client.DeviceRefused("the image", f"target class {plan['target']}, the "
                                       f"device is {plan['device_target']}")
    if plan["security_counter"] < plan["device_security_counter"]:
        raise smp_client.DeviceRefused(
            "the image", f"security counter {plan['security_counter']} is lower than the "
            f"device's {plan['device_security_counter']} (anti-rollback)")
    if plan["bytes"] > slot_size:
        raise smp_client.DeviceRefused("the image", f"{plan['bytes']} bytes is larger than "
                                       f"the slot ({slot_size} bytes)")


async def _upload(client: Any, data: bytes, timeout: float) -> tuple[int, float]:
    """Upload ``data``; (offset it resumed from, seconds)."""
    first = ImageUploadWrite(off=0, data=b"", image=0, len=len(data), upgrade=False,
                             sha=hashlib.sha256(data).digest())
    first_chunk = min(len(data), client.get_max_cbor_and_data_size(first)[1])
    progress = ByteProgress("upload", len(data))
    resumed, t0, first = 0, time.perf_counter(), True
    try:
        async for off in client.upload(data, slot=0, first_timeout_s=timeout,
                                       subsequent_timeout_s=timeout):
            if first and off != first_chunk:
                resumed = off
                progress.resume_at(off)
            else:
                progress.update(off)
            first = False
    except SMPUploadError as exc:
        rsp = exc.args[0] if exc.args else None
        raise smp_client.DeviceRefused("the upload", getattr(rsp, "rsn", None) or str(exc)) \
            from None
    except TimeoutError:
        raise smp_client.LinkError(f"upload: no answer within {timeout:g} s") from None
    finally:
        progress.close()
    return resumed, time.perf_counter() - t0


def flash(image: Path, link: str, mode: str, dry_run: bool, timeout: float,
          boot_timeout: float = BOOT_TIMEOUT_S) -> dict[str, Any]:
    """Flash ``image`` over ``link`` (``mode``: upload, test or confirm), waiting up to
    ``timeout`` s for each answer and ``boot_timeout`` s for the reboot; the summary dict
    (``result``: dry run, already running, already on trial, uploaded, trial, confirmed,
    reverted)."""
    from runtime.image import ImageError, load_image, read_image

    data = load_image(image)
    try:
        img = read_image(data)
    except ImageError as exc:
        raise SpikeflightError(f"{image}: {exc}") from None

    async def job(client: Any) -> dict[str, Any]:
        slots = await smp_client.images(client)
        rep = await smp_client.report(client)
        plan = _plan(image, img, slots, rep, mode)
        if dry_run:
            return {**plan, "result": "dry run"}
        _precheck(plan, rep.slot_size)
        old = slots.get(0)
        if old is not None and old.hash and old.hash.hex() == img.digest:
            if not old.confirmed and mode == "confirm":  # on trial already: confirm it
                await smp_client.mark(client, None, confirm=True)
            done = old.confirmed or mode == "confirm"
            return {**plan, "result": "already running" if done else "already on trial",
                    "seconds": 0.0, "resumed_from": 0}
        resumed, seconds = await _upload(client, data, timeout)
        slots = await smp_client.images(client)
        got = slots.get(1)
        if got is None or not got.hash or got.hash.hex() != img.digest:
            raise smp_client.LinkError(
                f"verify after write failed: slot 1 holds "
                f"{got.hash.hex()[:16] if got and got.hash else 'nothing'}, expected "
                f"{img.digest[:16]}")
        out = {**plan, "seconds": seconds, "resumed_from": resumed,
               "throughput_bps": (len(data) - resumed) / max(seconds, 1e-9)}
        if mode == "upload":
            return {**out, "result": "uploaded"}
        await smp_client.mark(client, img.digest, confirm=False)
        boot = (await smp_client.reset(client, boot_timeout)).boot
        if boot.get("result") != "running" or boot.get("image") != img.digest:
            return {**out, "result": "reverted", "boot": boot}
        if mode == "confirm":
            await smp_client.mark(client, None, confirm=True)
        return {**out, "result": "confirmed" if mode == "confirm" else "trial", "boot": boot}

    return smp_client.run(link, timeout, job)


def summary(res: dict[str, Any]) -> str:
    """The one-line summary of a flash (or its plan)."""
    name = Path(res["image"]).name
    if res["result"] == "dry run":
        then = {"upload": "stop", "test": "boot it on trial",
                "confirm": "boot and confirm it"}[res["mode"]]
        return (f"plan: upload {name} ({res['bytes']} bytes, {res['target']}, version "
                f"{res['version']}, security counter {res['security_counter']}) to slot 1 of "
                f"a {res['device_target']} device running {res['old_version'] or 'nothing'} "
                f"(security counter {res['device_security_counter']}), then {then}; "
                "nothing changed")
    if res["result"].startswith("already"):
        how = "confirmed" if res["result"] == "already running" else "on trial"
        return f"{name}: the device already runs it, {how} ({res['version']}); nothing sent"
    rate = res["throughput_bps"] / 1e3
    resumed = f", resumed at byte {res['resumed_from']}" if res["resumed_from"] else ""
    result = {"uploaded": "uploaded to slot 1 (not marked; use --test or --confirm)",
              "trial": "running on trial (confirm with 'spikeflight device confirm')",
              "confirmed": "running, confirmed",
              "reverted": "reverted to the previous image"}[res["result"]]
    return (f"{name}: {res['bytes']} bytes in {res['seconds']:.2f} s ({rate:.0f} kB/s{resumed})"
            f" to slot 1; version {res['old_version'] or '-'} -> {res['version']}, security "
            f"counter {res['device_security_counter']} -> {res['security_counter']}; "
            f"result: {result}")
