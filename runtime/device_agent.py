"""The device agent: what runs on an onboard controller between the link and the runtime.
It keeps two slots (``runtime/device_storage.py``), boots as MCUboot does and answers
mcumgr's SMP (``handle``: one request frame in, one response frame out).

Boot (on start and after an SMP reset):

1. slot 0 is still on trial (swapped in for a test and never confirmed): revert, i.e.
   slot 1 (the previous image) becomes slot 0 again;
2. otherwise, if slot 1 is marked pending: verify it (signature, key, target class,
   security counter not below the stored one) and swap it in on trial; refused: unmark;
3. verify slot 0 and run its golden-vector self-test on the device's backend
   (``runtime/selftest.py``). Passed: the image runs (confirmed, or on trial until
   confirmed; a ``permanent`` trial confirms itself now). Failed on trial: revert, record
   why and boot the previous image the same way. Failed when confirmed: nothing runs.

Each step is one atomic state write, so a power cut anywhere leaves either the old or
the new state, and the next boot goes on from there: the device always comes back to a
verified image, the old or the new one as the confirmed state says.

SMP served: OS group echo, reset, MCUmgr parameters; image group state read, state write
(``hash`` of slot 1 marks it for test, ``confirm`` with it marks it permanent,
``confirm`` alone confirms slot 0), upload (offset, length, SHA-256, resume from the
acknowledged offset) and erase (slot 1); spikeflight group 72 report
(``runtime/smp_group.py``). Errors are SMP version-1 errors with a one-line reason
(``rsn``), each also an event in the device's log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbor2 import CBORDecodeError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from smp import header as smphdr
from smp import image_management as smpimg
from smp import os_management as smpos
from smp.error import MGMT_ERR

from runtime import smp_group
from runtime.device_storage import SYNC_BYTES, BootState, Storage
from runtime.failpoints import failpoint
from runtime.image import IMAGE_MAGIC, TARGETS, Image, ImageError, verify_image
from runtime.keys import key_id
from runtime.loader import FlightPolicy, unpack
from runtime.selftest import SelfTestResult, run_selftest

BUF_SIZE = 16384  # SMP frame buffer advertised in the MCUmgr parameters (bytes)
BUF_COUNT = 4
DEFAULT_SLOT_SIZE = 16 * 1024 * 1024  # bytes per slot

G_OS, G_IMG = smphdr.GroupId.OS_MANAGEMENT, smphdr.GroupId.IMAGE_MANAGEMENT
OS, IMG = smphdr.CommandId.OSManagement, smphdr.CommandId.ImageManagement
READ, WRITE = smphdr.OP.READ, smphdr.OP.WRITE
ERRORS = {G_OS: smpos.OSManagementErrorV1, G_IMG: smpimg.ImageManagementErrorV1,
          smp_group.GROUP_ID: smp_group.DeviceReportErrorV1}


class Refusal(Exception):
    """A request the device declines: SMP error ``rc`` with a one-line reason."""

    def __init__(self, reason: str, rc: MGMT_ERR = MGMT_ERR.EINVAL) -> None:
        super().__init__(reason)
        self.reason, self.rc = reason, rc


@dataclass
class Running:
    """The image slot 0 runs, after its self-test passed."""

    image: Image
    policy: FlightPolicy
    selftest: SelfTestResult


Handler = Callable[[bytes], tuple[Any, Callable[[], None] | None]]


class DeviceAgent:
    def __init__(self, storage: Storage, public_key: Ed25519PublicKey, target: str,
                 backend: str = "auto") -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.storage, self.public_key = storage, public_key
        self.target, self.backend = target, backend
        self.running: Running | None = None
        self.boot_report: dict[str, Any] = {"result": "not booted"}
        self.upload_offset: int | None = None  # next byte of slot 1 expected
        self.handlers: dict[tuple[int, int, int], Handler] = {
            (G_OS, OS.ECHO, WRITE): self._echo,
            (G_OS, OS.RESET, WRITE): self._reset,
            (G_OS, OS.MCUMGR_PARAMETERS, READ): self._params,
            (G_IMG, IMG.STATE, READ): self._state_read,
            (G_IMG, IMG.STATE, WRITE): self._state_write,
            (G_IMG, IMG.UPLOAD, WRITE): self._upload,
            (G_IMG, IMG.ERASE, WRITE): self._erase,
            (smp_group.GROUP_ID, smp_group.REPORT, READ): self._report,
        }

    # --- checks --------------------------------------------------------------------------
    def check(self, data: bytes, state: BootState) -> Image:
        """Verify an image for this device; raises ``Refusal`` with the reason."""
        try:
            img = verify_image(data, self.public_key)
        except ImageError as exc:
            raise Refusal(f"image refused: {exc}", MGMT_ERR.EACCESSDENIED) from None
        if img.header.target != self.target:
            raise Refusal(f"image refused: target class {img.header.target}, this device is "
                          f"{self.target}", MGMT_ERR.EACCESSDENIED)
        if img.header.security_counter < state.security_counter:
            raise Refusal(f"image refused: security counter {img.header.security_counter} is "
                          f"lower than the device's {state.security_counter} (anti-rollback)",
                          MGMT_ERR.EACCESSDENIED)
        return img

    # --- boot ----------------------------------------------------------------------------
    def boot(self) -> dict[str, Any]:
        """MCUboot's decisions, then the self-test (see the module docstring)."""
        self.running, self.upload_offset = None, None
        st = self.storage.load_state()
        reason = ""
        if st.trial:
            reason = self._revert(st, "the trial image was not confirmed before the reset")
        elif st.pending:
            self._swap(st)
        while True:
            st = self.storage.load_state()
            if st.primary is None:
                self.boot_report = {"result": "no image", "reason": reason or
                                    "nothing installed"}
                self.storage.log("boot", **self.boot_report)
                return self.boot_report
            data = self.storage.read_bank(st.primary)
            digest = ""
            try:
                img = self.check(data, st)
                digest = img.digest
                failpoint("selftest")
                policy = self._unpack(img)
                res = run_selftest(policy, self.backend,
                                   on_vector=lambda _i: failpoint("selftest"))
                failpoint("selftest")
                failed = "" if res.passed else f"self-test failed: {res.reason}"
            except Refusal as exc:
                failed, res = exc.reason, None
            if not failed:
                self.running = Running(img, policy, res)
                if st.trial == "permanent":
                    self._confirm(st)
                    st = self.storage.load_state()
                self.boot_report = {
                    "result": "running", "state": "trial" if st.trial else "confirmed",
                    "image": img.digest, "version": img.header.version,
                    "security_counter": img.header.security_counter,
                    "selftest": res.to_dict(), "reason": reason}
                self.storage.log("boot", **self.boot_report)
                return self.boot_report
            if st.trial:
                reason = self._revert(st, failed)
                continue
            self.boot_report = {"result": "no verified image", "image": digest,
                                "reason": failed}
            self.storage.log("boot", **self.boot_report)
            return self.boot_report

    @staticmethod
    def _unpack(img: Image) -> FlightPolicy:
        """``unpack``, a signed image that lacks what flight needs being a refusal (an
        imgtool-signed payload need not come from our compiler)."""
        try:
            return unpack(img)
        except (KeyError, ImageError, ValueError) as exc:
            raise Refusal(f"image refused: not a flyable policy ({type(exc).__name__}: "
                          f"{exc})") from None

    def _swap(self, st: BootState) -> None:
        data = self.storage.read_bank(st.secondary)
        try:
            img = self.check(data, st)
        except Refusal as exc:
            self.storage.log("swap refused", reason=exc.reason)
            st.pending = None
            self.storage.save_state(st, "swap")
            return
        trial = st.pending
        st.primary, st.trial, st.pending = st.secondary, trial, None
        self.storage.save_state(st, "swap")
        self.storage.log("swap", image=img.digest, version=img.header.version, trial=trial)

    def _revert(self, st: BootState, why: str) -> str:
        """Make slot 1 (the image before the trial) slot 0 again; returns the reason as
        the boot report gives it."""
        old = st.secondary if self.storage.record(st.secondary).complete else None
        failed = st.primary
        st.primary, st.trial, st.pending = old, None, None
        self.storage.save_state(st, "swap")
        self.storage.log("revert", reason=why, failed_bank=failed, now_bank=old)
        return f"reverted the trial image: {why}"

    def _confirm(self, st: BootState) -> None:
        assert self.running is not None
        st.trial = None
        st.security_counter = max(st.security_counter,
                                  self.running.image.header.security_counter)
        self.storage.save_state(st, "confirm")
        if self.boot_report.get("state") == "trial":
            self.boot_report["state"] = "confirmed"
        self.storage.log("confirm", image=self.running.image.digest,
                         security_counter=st.security_counter)

    # --- SMP -----------------------------------------------------------------------------
    def handle(self, frame: bytes) -> tuple[bytes, Callable[[], None] | None]:
        """One SMP request frame -> (response frame, what to do after sending it)."""
        if len(frame) < smphdr.Header.SIZE:
            raise Refusal(f"not an SMP frame: {len(frame)} bytes, shorter than a header")
        try:
            header = smphdr.Header.loads(frame[:smphdr.Header.SIZE])
        except (ValueError, TypeError) as exc:
            raise Refusal(f"not an SMP frame: {exc}") from None
        handler = self.handlers.get((int(header.group_id), int(header.command_id),
                                     int(header.op)))
        err = ERRORS.get(int(header.group_id), smpos.OSManagementErrorV1)
        if handler is None:
            reason = (f"unsupported request: group {int(header.group_id)} command "
                      f"{int(header.command_id)} op {int(header.op)}")
            self.storage.log("refused", reason=reason)
            return smp_group.error_frame(header, err, MGMT_ERR.ENOTSUP, reason), None
        try:
            response, after = handler(frame)
        except Refusal as exc:
            self.storage.log("refused", reason=exc.reason)
            return smp_group.error_frame(header, err, exc.rc, exc.reason), None
        except ValidationError as exc:
            return self._malformed(header, err, exc.errors()[0]["msg"]), None
        except (CBORDecodeError, TypeError) as exc:  # a body that is not a CBOR map
            return self._malformed(header, err, str(exc)), None
        return bytes(response), after

    def _malformed(self, header: smphdr.Header, err: type, why: str) -> bytes:
        reason = f"malformed request: {why}"
        self.storage.log("refused", reason=reason)
        return smp_group.error_frame(header, err, MGMT_ERR.EINVAL, reason)

    def _echo(self, frame: bytes):
        req = smpos.EchoWriteRequest.loads(frame)
        return smpos.EchoWriteResponse(sequence=req.header.sequence, r=req.d), None

    def _reset(self, frame: bytes):
        req = smpos.ResetWriteRequest.loads(frame)
        self.storage.log("reset")
        return smpos.ResetWriteResponse(sequence=req.header.sequence), self.boot

    def _params(self, frame: bytes):
        req = smpos.MCUMgrParametersReadRequest.loads(frame)
        return smpos.MCUMgrParametersReadResponse(sequence=req.header.sequence,
                                                  buf_size=BUF_SIZE, buf_count=BUF_COUNT), None

    def _images(self) -> list[smpimg.ImageState]:
        st = self.storage.load_state()
        out = []
        for slot, bank in ((0, st.primary), (1, st.secondary)):
            if bank is None or not self.storage.record(bank).complete:
                continue
            data = self.storage.read_bank(bank)
            try:
                img = verify_image(data, self.public_key)
                version, digest = img.header.version, bytes.fromhex(img.digest)
            except ImageError:
                version, digest = "invalid", hashlib.sha256(data).digest()
            running = slot == 0 and self.running is not None
            out.append(smpimg.ImageState(
                slot=slot, image=0, version=version, hash=digest, bootable=True,
                pending=(slot == 1 and st.pending is not None) or None,
                confirmed=(slot == 0 and not st.trial) or None, active=running or None,
                permanent=(slot == 1 and st.pending == "permanent") or None))
        return out

    def _state_read(self, frame: bytes):
        req = smpimg.ImageStatesReadRequest.loads(frame)
        return smpimg.ImageStatesReadResponse(sequence=req.header.sequence,
                                              images=self._images()), None

    def _state_write(self, frame: bytes):
        req = smpimg.ImageStatesWriteRequest.loads(frame)
        st = self.storage.load_state()
        want = req.hash.hex() if req.hash else None
        running = self.running.image.digest if self.running else None
        if req.confirm and want in (None, running):
            if self.running is None:
                raise Refusal("nothing to confirm: no image is running", MGMT_ERR.EBADSTATE)
            if st.trial:
                self._confirm(st)
        elif want is None:
            raise Refusal("state write without a hash marks nothing (give slot 1's hash)")
        elif want == running:
            raise Refusal("slot 0 already runs that image", MGMT_ERR.EBADSTATE)
        else:
            rec = self.storage.record(st.secondary)
            if rec.length and not rec.complete:
                raise Refusal(f"slot 1 holds an incomplete upload ({self._offset(st)} of "
                              f"{rec.length} bytes)", MGMT_ERR.EBADSTATE)
            data = self.storage.read_bank(st.secondary) if rec.complete else b""
            img = self.check(data, st) if data else None
            if img is None or img.digest != want:
                raise Refusal(f"no image with hash {want[:16]} in slot 1", MGMT_ERR.ENOENT)
            if st.trial:
                raise Refusal("slot 0 runs a trial image: confirm it or reset to roll back "
                              "first", MGMT_ERR.EBADSTATE)
            st.pending = "permanent" if req.confirm else "test"
            self.storage.save_state(st, "state")
            self.storage.log("pending", image=want, mode=st.pending)
        return smpimg.ImageStatesWriteResponse(sequence=req.header.sequence,
                                               images=self._images()), None

    def _offset(self, st: BootState) -> int:
        if self.upload_offset is None:
            self.upload_offset = self.storage.resume_offset(st.secondary)
        return self.upload_offset

    def _upload(self, frame: bytes):
        req = smpimg.ImageUploadWriteRequest.loads(frame)
        seq = req.header.sequence
        st = self.storage.load_state()
        bank = st.secondary
        if req.image not in (None, 0):
            raise Refusal(f"image {req.image}: this device has one image (0)")
        if st.trial:
            raise Refusal("slot 0 runs a trial image and slot 1 holds its fallback: confirm "
                          "it or reset to roll back before uploading", MGMT_ERR.EBADSTATE)
        rec = self.storage.record(bank)
        if req.off == 0:
            if req.len is None:
                raise Refusal("the first chunk must give the image length 'len'")
            if req.len > self.storage.slot_size:
                raise Refusal(f"image of {req.len} bytes is larger than the slot "
                              f"({self.storage.slot_size} bytes)", MGMT_ERR.ENOMEM)
            sha = req.sha.hex() if req.sha else ""
            if sha and rec.sha256 == sha and rec.length == req.len:
                off = self._offset(st)
                if off > 0:  # the same upload again: go on where it stopped
                    self.storage.log("upload resumed", offset=off, length=rec.length)
                    return smpimg.ImageUploadWriteResponse(
                        sequence=seq, off=off, match=True if off == rec.length else None), None
            if req.data[:4] and int.from_bytes(req.data[:4].ljust(4, b"\0"), "little") \
                    != IMAGE_MAGIC:
                raise Refusal(f"not an MCUboot image (magic 0x{req.data[:4].hex()})")
            if st.pending:
                st.pending = None
                self.storage.save_state(st, "state")
            self.storage.begin_upload(bank, req.len, sha)
            self.storage.log("upload started", length=req.len, sha256=sha[:16])
            rec = self.storage.record(bank)
            self.upload_offset = 0
        elif not rec.length:
            raise Refusal("no upload in progress: send the first chunk (off 0) first",
                          MGMT_ERR.EBADSTATE)
        off = self._offset(st)
        if req.off != off:  # out of step: tell the client where to continue
            return smpimg.ImageUploadWriteResponse(sequence=seq, off=off), None
        end = off + len(req.data)
        if end > rec.length:
            raise Refusal(f"chunk at {off} of {len(req.data)} bytes overruns the declared "
                          f"length {rec.length}")
        self.storage.write(bank, off, req.data)
        self.upload_offset = end
        if end == rec.length or end - rec.written >= SYNC_BYTES:
            self.storage.sync(bank, end)
        if end < rec.length:
            return smpimg.ImageUploadWriteResponse(sequence=seq, off=end), None
        data = self.storage.read_bank(bank)
        match = hashlib.sha256(data).hexdigest() == rec.sha256 if rec.sha256 else None
        self.storage.log("upload complete", length=rec.length, match=match)
        try:
            if match is False:
                raise Refusal("uploaded bytes do not match the SHA-256 given with the first "
                              "chunk", MGMT_ERR.ECORRUPT)
            self.check(data, st)  # refusals reach the client now
        except Refusal:
            self.storage.erase(bank)  # slot 1 never keeps an image the device refused
            self.upload_offset = 0
            raise
        return smpimg.ImageUploadWriteResponse(sequence=seq, off=end, match=match), None

    def _erase(self, frame: bytes):
        req = smpimg.ImageEraseRequest.loads(frame)
        st = self.storage.load_state()
        if req.slot not in (None, 1):
            raise Refusal(f"slot {req.slot} cannot be erased (slot 0 runs)", MGMT_ERR.EACCESSDENIED)
        if st.trial:
            raise Refusal("slot 1 holds the trial image's fallback: confirm or roll back first",
                          MGMT_ERR.EBADSTATE)
        if st.pending:
            st.pending = None
            self.storage.save_state(st, "state")
        self.storage.erase(st.secondary)
        self.upload_offset = 0
        self.storage.log("erase", slot=1)
        return smpimg.ImageEraseResponse(sequence=req.header.sequence), None

    def _report(self, frame: bytes):
        req = smp_group.DeviceReportReadRequest.loads(frame)
        st = self.storage.load_state()
        return smp_group.DeviceReportReadResponse(
            sequence=req.header.sequence, target=self.target,
            key_id=key_id(self.public_key), backend=self.backend,
            slot_size=self.storage.slot_size, security_counter=st.security_counter,
            boot=self.boot_report, events=self.storage.events(10)), None


def open_agent(storage: str | Path, public_key: Ed25519PublicKey, target: str,
               backend: str = "auto", slot_size: int = DEFAULT_SLOT_SIZE) -> DeviceAgent:
    """An agent on ``storage``, booted."""
    agent = DeviceAgent(Storage(Path(storage), slot_size), public_key, target, backend)
    agent.boot()
    return agent


def serve(agent: DeviceAgent, link: Any) -> None:
    """Answer SMP requests from ``link`` (``runtime/smp_transport.py``) until it closes;
    a reset's reboot runs after its response has been sent, as on a device."""
    for frame, reply in link.frames():
        try:
            response, after = agent.handle(frame)
        except Refusal as exc:
            agent.storage.log("garbage", reason=exc.reason)
            continue
        reply(response)
        if after is not None:
            after()
