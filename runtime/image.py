"""The signed policy image (``.sfimg``): the contract between compiler and runtime.

An image is an **MCUboot image** whose body is the spikeflight payload, so that MCUboot's
own tools read and check it: ``imgtool verify -k KEY`` accepts it, ``imgtool dumpinfo``
prints it, and a payload signed by ``imgtool sign`` with the same Ed25519 key loads here.
All integers are little-endian. Format version 2 (version 1, with its own header, is gone).

MCUboot header (32 bytes, ``struct image_header``)::

    offset  size  field
    ------  ----  ---------------------------------------------------------------------
    0       4     ih_magic 0x96f3b83d
    4       4     ih_load_addr, 0 (the image is not loaded to a fixed RAM address)
    8       2     ih_hdr_size H: 32, or more with zero padding (``imgtool -H``)
    10      2     ih_protect_tlv_size: bytes of the protected TLV area, info included
    12      4     ih_img_size B: bytes of the body (the spikeflight payload)
    16      4     ih_flags, 0 (no encryption, compression, RAM load)
    20      8     ih_ver: major u8, minor u8, revision u16, build u32
    28      4     padding, 0

Body at H (the spikeflight payload, what ``imgtool sign --pad-header`` signs)::

    0       4     magic b"SFIM"
    4       2     format_version, u16 (2; other versions are refused)
    6       2     payload header size, u16 (56)
    8       4     manifest_size M, u32
    12      4     section_count N, u32
    16      4     sections_size S, u32 (B = 56 + M + S)
    20      32    SHA-256 of the manifest bytes
    52      4     CRC-32 (zlib) of payload header bytes 0..51
    56      M     manifest: canonical JSON (UTF-8, sorted keys, compact, no NaN)
    56+M    S     sections, back to back in manifest order, no padding

The manifest is the compiler's dict plus a ``sections`` table added by the packer: a list of
``{"name", "offset", "size", "sha256"}`` with offsets relative to the sections area.

Protected TLV area at H + B (covered by the SHA-256 and hence by the signature)::

    info   magic u16 0x6908, total length u16 (4 + entries)
    0x50   SEC_CNT, u32: the monotonic anti-rollback security counter
    0xa0   spikeflight target class, u8: 0 loihi2, 1 cpu, 2 cpu-fixed (a vendor TLV)

TLV area after it, to the end of the file (nothing may follow)::

    info   magic u16 0x6907, total length u16 (144)
    0x10   SHA256: SHA-256 of bytes [0, H + B + protected TLV size)
    0x01   KEYHASH: SHA-256 of the DER SubjectPublicKeyInfo Ed25519 public key
    0x24   ED25519: signature over the 32-byte SHA256 value (imgtool's default)

Each TLV is type u16 (standard types: u8 + a zero byte, as imgtool writes them), length
u16, value. A spikeflight payload ``payload.bin`` becomes an image with
``imgtool sign -k KEY.pem --pad-header -H 32 -S SLOT_SIZE -v 1.2.3 -s 7 --custom-tlv 0xa0
0x01 payload.bin out.sfimg`` (target cpu); :func:`payload_bytes` gives the payload of an
image, and signing it so with the image's key, version and counter gives the image back
byte for byte (Ed25519 signatures are deterministic).

Failures raise :class:`ImageError` naming the region: ``header`` (MCUboot header and payload
header), ``manifest``, ``section 'NAME'``, ``protected TLVs``, ``trailer``, ``digest``
(the SHA-256 does not match although every region with its own checksum does: the version
field, a protected TLV value or the SHA256 entry was altered), ``key`` or ``signature``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from hardware.files import MiB, read_input
from runtime.keys import key_hash, key_id

TARGETS = ("loihi2", "cpu", "cpu-fixed")
# the largest image file read: the paper-sized network (2 x 2048) in float64 and 8-bit
# with its graphs is about 80 MB; anything far beyond is not an image
MAX_IMAGE_BYTES = 256 * MiB
IMAGE_MAGIC = 0x96F3B83D
HEADER_SIZE = 32
PAYLOAD_MAGIC = b"SFIM"
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (2,)
PAYLOAD_HEADER_SIZE = 56
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_KEYHASH = 0x01
TLV_SHA256 = 0x10
TLV_ED25519 = 0x24
TLV_SEC_CNT = 0x50
TLV_TARGET = 0xA0
TLV_NAMES = {TLV_KEYHASH: "KEYHASH", TLV_SHA256: "SHA256", TLV_ED25519: "ED25519",
             TLV_SEC_CNT: "SEC_CNT", TLV_TARGET: "TARGET"}
TLV_LENGTHS = {TLV_SHA256: 32, TLV_KEYHASH: 32, TLV_ED25519: 64, TLV_SEC_CNT: 4,
               TLV_TARGET: 1}
TLV_ORDER = (TLV_SHA256, TLV_KEYHASH, TLV_ED25519)
PROTECTED_ORDER = (TLV_SEC_CNT, TLV_TARGET)
PROTECTED_SIZE = 4 + sum(4 + TLV_LENGTHS[t] for t in PROTECTED_ORDER)

_MCUBOOT = struct.Struct("<IIHHIIBBHII")
_PAYLOAD = struct.Struct("<4sHHIII32sI")
_TLV_INFO = struct.Struct("<HH")
_TLV = struct.Struct("<HH")
_U32 = 0xFFFFFFFF
_SECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\+(0|[1-9]\d*))?")
_SHA_HEX = re.compile(r"[0-9a-f]{64}")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
assert _MCUBOOT.size == HEADER_SIZE and _PAYLOAD.size == PAYLOAD_HEADER_SIZE


class ImageError(SpikeflightError):
    """A bad image, or bad input to the packer. ``region`` is the part that failed (see the
    module docstring) and leads the message, or None."""

    def __init__(self, message: str, region: str | None = None) -> None:
        super().__init__(f"{region}: {message}" if region else message)
        self.region = region


class PackError(ImageError, ValueError):
    """Bad input to :func:`pack_image` or :func:`arrays_to_bytes`; raised before any byte
    is produced."""


@dataclass(frozen=True)
class ImageHeader:
    """The decoded MCUboot header, payload header and protected TLVs (see the module
    docstring for the byte layout)."""

    format_version: int
    header_size: int
    target: str
    version_major: int
    version_minor: int
    version_revision: int
    version_build: int
    security_counter: int
    body_size: int
    protected_tlv_size: int
    manifest_size: int
    section_count: int
    sections_size: int
    manifest_sha256: str
    payload_crc32: int

    @property
    def version(self) -> str:
        """``MAJOR.MINOR.REVISION`` with ``+BUILD`` when the build number is not 0."""
        core = f"{self.version_major}.{self.version_minor}.{self.version_revision}"
        return f"{core}+{self.version_build}" if self.version_build else core

    @property
    def manifest_offset(self) -> int:
        """File offset of the manifest (after the MCUboot and payload headers)."""
        return self.header_size + PAYLOAD_HEADER_SIZE

    @property
    def sections_offset(self) -> int:
        """File offset of the first section."""
        return self.manifest_offset + self.manifest_size

    @property
    def protected_size(self) -> int:
        """Bytes covered by the SHA-256: header, body and protected TLV area."""
        return self.header_size + self.body_size + self.protected_tlv_size


@dataclass(frozen=True)
class Image:
    """A parsed image whose regions all match their recorded digests.

    ``manifest`` is the stored manifest, including the packer's ``sections`` table;
    ``sections`` maps section names to their bytes in file order; ``key_id`` is the
    trailer's KEYHASH in hex (only :func:`verify_image` checks it against a key);
    ``digest`` is the hex SHA-256 of the protected area.
    """

    header: ImageHeader
    manifest: dict
    sections: dict[str, bytes]
    key_id: str
    digest: str
    signature: str
    trailer_size: int

    @property
    def section_table(self) -> list[dict]:
        """``[{"name", "offset", "size", "sha256"}, ...]`` (offsets from the sections area)."""
        return self.manifest["sections"]

    @property
    def size(self) -> int:
        """Total file size in bytes."""
        return self.header.protected_size + self.trailer_size

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """Section ``name`` decoded with :func:`bytes_to_arrays`."""
        if name not in self.sections:
            raise ImageError(f"no section '{name}' (has: {', '.join(self.sections) or 'none'})")
        return bytes_to_arrays(self.sections[name], what=f"section '{name}'")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: ``header``, ``manifest``, ``sections``, ``trailer``."""
        h = self.header
        header = asdict(h)
        header["version"] = h.version
        sections = [{**row, "file_offset": h.sections_offset + row["offset"]}
                    for row in self.section_table]

        def tlvs(order: tuple[int, ...]) -> list[dict[str, Any]]:
            return [{"type": t, "name": TLV_NAMES[t], "length": TLV_LENGTHS[t]} for t in order]

        trailer = {
            "offset": h.protected_size,
            "size": self.trailer_size,
            "sha256": self.digest,
            "key_id": self.key_id,
            "signature": self.signature,
            "protected_tlvs": tlvs(PROTECTED_ORDER),
            "tlvs": tlvs(TLV_ORDER),
        }
        return {
            "file_size": self.size,
            "header": header,
            "manifest": self.manifest,
            "sections": sections,
            "trailer": trailer,
        }


# --- arrays <-> bytes -------------------------------------------------------------------


def arrays_to_bytes(arrays: dict[str, np.ndarray], *, compress: bool = False) -> bytes:
    """An ``.npz`` archive of ``arrays``: uncompressed, what ``np.savez`` writes (each
    array's data lies in the archive as is, so ONNX external data can point into it), or
    deflated with ``compress`` (``np.savez_compressed``); either way with fixed zip
    timestamps so that the same arrays always give the same bytes. Object arrays are
    refused: a weight section never carries pickles."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, value in arrays.items():
            if not isinstance(name, str) or not name or "/" in name or "\x00" in name:
                raise PackError(f"array name {name!r} is not a plain non-empty string")
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise PackError(f"array '{name}' has dtype object; only plain arrays are stored")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


def bytes_to_arrays(data: bytes, *, what: str = "arrays") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, loaded with ``allow_pickle=False``: a blob that
    would unpickle objects raises :class:`ImageError` instead of running code."""
    if bytes(data[:4]) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ImageError(f"{what}: not an .npz archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            out = {}
            for name in npz.files:
                value = npz[name]
                if not isinstance(value, np.ndarray):
                    raise ImageError(f"{what}: member '{name}' is not a .npy array")
                out[name] = value
            return out
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ImageError(f"{what}: holds pickled Python objects; refused") from None
        raise ImageError(f"{what}: not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageError(f"{what}: not a readable .npz archive ({exc})") from None


# --- packing ----------------------------------------------------------------------------


def parse_version(version: str) -> tuple[int, int, int, int]:
    """``"1.2.3"`` or ``"1.2.3+4"`` -> (major, minor, revision, build), range-checked
    against the header's u8/u8/u16/u32 fields."""
    m = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if m is None:
        raise PackError(f"version {version!r} is not MAJOR.MINOR.PATCH[+BUILD] (e.g. 1.2.3+4)")
    parts = tuple(int(g) if g is not None else 0 for g in m.groups())
    for label, value, limit in zip(
        ("major", "minor", "patch", "build"), parts, (255, 255, 65535, _U32), strict=True
    ):
        if value > limit:
            raise PackError(f"version {version!r}: {label} {value} exceeds {limit}")
    return parts  # type: ignore[return-value]


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: one byte string per value."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_json(obj: Any, where: str) -> None:
    """Raise PackError naming the first value that does not survive a JSON round trip."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise PackError(f"{where} has a non-string key {key!r}")
            _check_json(value, f"{where}[{key!r}]")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_json(value, f"{where}[{i}]")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise PackError(f"{where} is {obj}, which JSON cannot hold")
    elif not (obj is None or isinstance(obj, str | int | bool)):
        raise PackError(f"{where} is a {type(obj).__name__}, not a JSON value")


def check_section_name(name: object) -> str:
    """A section name: 1-63 ASCII letters, digits, '.', '_' or '-', not starting with a
    punctuation character."""
    if not isinstance(name, str) or not _SECTION_NAME.fullmatch(name) or not name.isascii():
        raise PackError(f"section name {name!r} is not 1-63 ASCII letters, digits, '.', '_' or '-'")
    return name


def _tlv_area(magic: int, entries: list[tuple[int, bytes]]) -> bytes:
    """A TLV area: info (magic, total length) then each ``(type, value)`` entry."""
    body = b"".join(_TLV.pack(kind, len(value)) + value for kind, value in entries)
    return _TLV_INFO.pack(magic, _TLV_INFO.size + len(body)) + body


def pack_image(
    manifest: dict,
    sections: dict[str, bytes],
    *,
    target: str,
    version: str,
    security_counter: int,
    private_key: Ed25519PrivateKey,
) -> bytes:
    """Build and sign an image. All input is checked first (:class:`PackError`)."""
    if target not in TARGETS:
        raise PackError(f"target {target!r} is not one of: {', '.join(TARGETS)}")
    major, minor, revision, build = parse_version(version)
    if (
        not isinstance(security_counter, int)
        or isinstance(security_counter, bool)
        or not 0 <= security_counter <= _U32
    ):
        raise PackError(f"security counter {security_counter!r} is not an integer in 0..{_U32}")
    if not isinstance(private_key, Ed25519PrivateKey):
        raise PackError(f"private key is a {type(private_key).__name__}, not Ed25519")
    if not isinstance(manifest, dict):
        raise PackError(f"manifest is a {type(manifest).__name__}, not a dict")
    if "sections" in manifest:
        raise PackError("manifest key 'sections' is reserved for the packer's section table")
    _check_json(manifest, "manifest")
    blobs: list[bytes] = []
    table: list[dict] = []
    offset = 0
    for name, blob in sections.items():
        check_section_name(name)
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise PackError(f"section '{name}' is a {type(blob).__name__}, not bytes")
        blob = bytes(blob)
        table.append(
            {
                "name": name,
                "offset": offset,
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
        blobs.append(blob)
        offset += len(blob)
    manifest_bytes = canonical_json({**manifest, "sections": table})
    body_size = PAYLOAD_HEADER_SIZE + len(manifest_bytes) + offset
    if body_size > _U32:
        raise PackError("image too large: the body must stay below 4 GiB (MCUboot's u32 size)")
    payload_head = _PAYLOAD.pack(PAYLOAD_MAGIC, FORMAT_VERSION, PAYLOAD_HEADER_SIZE,
                                 len(manifest_bytes), len(table), offset,
                                 hashlib.sha256(manifest_bytes).digest(), 0)[:-4]
    payload_head += struct.pack("<I", zlib.crc32(payload_head))
    head = _MCUBOOT.pack(IMAGE_MAGIC, 0, HEADER_SIZE, PROTECTED_SIZE, body_size, 0,
                         major, minor, revision, build, 0)
    protected = _tlv_area(TLV_PROT_INFO_MAGIC, [
        (TLV_SEC_CNT, struct.pack("<I", security_counter)),
        (TLV_TARGET, bytes([TARGETS.index(target)])),
    ])
    signed = b"".join([head, payload_head, manifest_bytes, *blobs, protected])
    digest = hashlib.sha256(signed).digest()
    values = {
        TLV_SHA256: digest,
        TLV_KEYHASH: key_hash(private_key.public_key()),
        TLV_ED25519: private_key.sign(digest),
    }
    return signed + _tlv_area(TLV_INFO_MAGIC, [(t, values[t]) for t in TLV_ORDER])


# --- reading ----------------------------------------------------------------------------


def _u16_at(data: bytes, offset: int) -> int | None:
    return struct.unpack_from("<H", data, offset)[0] if 0 <= offset <= len(data) - 2 else None


def _mcuboot_header(data: bytes) -> tuple[int, ...]:
    """The checked MCUboot header fields ``(hdr_size, prot_size, body_size, major, minor,
    revision, build)``."""
    if len(data) < HEADER_SIZE:
        raise ImageError(f"truncated: file is {len(data)} bytes, the MCUboot header alone is "
                         f"{HEADER_SIZE}", "header")
    magic, load, hdr, prot, body, flags, major, minor, rev, build, pad = _MCUBOOT.unpack_from(data)
    if magic != IMAGE_MAGIC:
        raise ImageError(f"bad magic 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x} "
                         "(not an MCUboot image)", "header")
    if load != 0:
        raise ImageError(f"load address 0x{load:08x}: a policy image has none (0)", "header")
    if flags != 0:
        raise ImageError(f"flags 0x{flags:08x}: encrypted, compressed, RAM-load or "
                         "non-bootable images are not supported", "header")
    if pad != 0:
        raise ImageError(f"padding word is 0x{pad:08x}, not 0", "header")
    if hdr < HEADER_SIZE:
        raise ImageError(f"header size {hdr}, at least {HEADER_SIZE}", "header")
    if len(data) < hdr + PAYLOAD_HEADER_SIZE:
        raise ImageError(f"truncated: file is {len(data)} bytes, the headers alone are "
                         f"{hdr + PAYLOAD_HEADER_SIZE}", "header")
    if any(data[HEADER_SIZE:hdr]):
        raise ImageError(f"header padding (bytes {HEADER_SIZE}..{hdr}) is not zero", "header")
    return hdr, prot, body, major, minor, rev, build


def _protected_tlvs(data: bytes, start: int, size: int) -> dict[int, bytes]:
    """The protected TLV area ``[start, start + size)``."""
    region = "protected TLVs"
    if size == 0:
        raise ImageError("none, so no security counter and no target class (imgtool: "
                         "sign with -s N --custom-tlv 0xa0 0xNN)", region)
    if size < _TLV_INFO.size:
        raise ImageError(f"protected TLV size {size} is smaller than its 4-byte info", "header")
    magic, total = _TLV_INFO.unpack_from(data, start)
    if magic != TLV_PROT_INFO_MAGIC:
        raise ImageError(f"bad magic 0x{magic:04x}, expected 0x{TLV_PROT_INFO_MAGIC:04x}",
                         region)
    if total != size:
        # Which one is wrong? Where the TLV area's magic sits tells.
        if (_u16_at(data, start + total) == TLV_INFO_MAGIC
                and _u16_at(data, start + size) != TLV_INFO_MAGIC):
            raise ImageError(f"protected TLV size {size}, the protected area says {total}",
                             "header")
        raise ImageError(f"length field says {total} bytes, the header says {size}", region)
    return _tlv_entries(data, start + _TLV_INFO.size, start + total, PROTECTED_ORDER, region)


def _tlv_entries(data: bytes, pos: int, end: int, expected: tuple[int, ...],
                 region: str) -> dict[int, bytes]:
    """The entries ``{type: value}`` of a TLV area's body ``[pos, end)``: exactly the types
    in ``expected``, each once, each with its fixed length."""
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if end - pos < _TLV.size:
            raise ImageError(f"TLV header at byte {pos} runs past the end", region)
        kind, length = _TLV.unpack_from(data, pos)
        pos += _TLV.size
        if kind not in expected:
            raise ImageError(f"unknown TLV type 0x{kind:02x} at byte {pos - 4}", region)
        if kind in tlvs:
            raise ImageError(f"duplicate {TLV_NAMES[kind]} TLV", region)
        if length != TLV_LENGTHS[kind]:
            raise ImageError(
                f"{TLV_NAMES[kind]} TLV has length {length}, expected {TLV_LENGTHS[kind]}",
                region)
        if pos + length > end:
            raise ImageError(f"{TLV_NAMES[kind]} TLV runs past the end", region)
        tlvs[kind] = data[pos : pos + length]
        pos += length
    missing = [f"{TLV_NAMES[t]} (0x{t:02x})" for t in expected if t not in tlvs]
    if missing:
        raise ImageError(f"missing TLV {', '.join(missing)}", region)
    return tlvs


def _parse_header(data: bytes) -> ImageHeader:
    """MCUboot header, payload header and protected TLVs, checked against each other."""
    hdr, prot, body, major, minor, rev, build = _mcuboot_header(data)
    pmagic, fmt, psize, msize, count, ssize, msha, crc = _PAYLOAD.unpack_from(data, hdr)
    if pmagic != PAYLOAD_MAGIC:
        raise ImageError(f"body starts with {pmagic!r}, not {PAYLOAD_MAGIC!r}: an MCUboot "
                         "image, but not a spikeflight policy image", "header")
    if fmt not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise ImageError(f"unsupported format version {fmt} (reads {supported})", "header")
    if psize != PAYLOAD_HEADER_SIZE:
        raise ImageError(f"payload header size {psize}, format {fmt} has "
                         f"{PAYLOAD_HEADER_SIZE}", "header")
    actual = zlib.crc32(data[hdr : hdr + PAYLOAD_HEADER_SIZE - 4])
    if actual != crc:
        raise ImageError(f"payload header checksum mismatch (recorded 0x{crc:08x}, computed "
                         f"0x{actual:08x})", "header")
    if PAYLOAD_HEADER_SIZE + msize + ssize != body:
        raise ImageError(f"image size {body} in the MCUboot header, the payload header adds "
                         f"up to {PAYLOAD_HEADER_SIZE + msize + ssize}", "header")
    if len(data) < hdr + body + prot:
        raise ImageError(f"truncated: header, body and protected TLVs need {hdr + body + prot} "
                         f"bytes, file has {len(data)}", "header")
    tlvs = _protected_tlvs(data, hdr + body, prot)
    target = tlvs[TLV_TARGET][0]
    if target >= len(TARGETS):
        raise ImageError(f"unknown target class {target}", "protected TLVs")
    return ImageHeader(
        format_version=fmt, header_size=hdr, target=TARGETS[target],
        version_major=major, version_minor=minor, version_revision=rev, version_build=build,
        security_counter=struct.unpack("<I", tlvs[TLV_SEC_CNT])[0], body_size=body,
        protected_tlv_size=prot, manifest_size=msize, section_count=count,
        sections_size=ssize, manifest_sha256=msha.hex(), payload_crc32=crc,
    )


def _parse_trailer(data: bytes, start: int) -> dict[int, bytes]:
    rest = len(data) - start
    if rest < _TLV_INFO.size:
        raise ImageError(f"truncated: {rest} bytes after the protected area", "trailer")
    magic, total = _TLV_INFO.unpack_from(data, start)
    if magic != TLV_INFO_MAGIC:
        raise ImageError(f"bad magic 0x{magic:04x}, expected 0x{TLV_INFO_MAGIC:04x}", "trailer")
    if total != rest:
        hint = "truncated" if total > rest else "extra bytes after it"
        raise ImageError(f"length field says {total} bytes, {rest} follow ({hint})", "trailer")
    return _tlv_entries(data, start + _TLV_INFO.size, start + total, TLV_ORDER, "trailer")


def _parse_manifest(data: bytes, header: ImageHeader) -> dict:
    raw = data[header.manifest_offset : header.manifest_offset + header.manifest_size]
    actual = hashlib.sha256(raw).hexdigest()
    if actual != header.manifest_sha256:
        raise ImageError(
            f"SHA-256 mismatch (header records {header.manifest_sha256[:16]}..., "
            f"content hashes to {actual[:16]}...)",
            "manifest",
        )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageError(f"not valid UTF-8 JSON ({exc})", "manifest") from None
    if not isinstance(manifest, dict):
        raise ImageError(f"top level is a {type(manifest).__name__}, not an object", "manifest")
    if canonical_json(manifest) != raw:
        raise ImageError("not in canonical form (sorted keys, compact)", "manifest")
    table = manifest.get("sections")
    if not isinstance(table, list):
        raise ImageError("no 'sections' table", "manifest")
    if len(table) != header.section_count:
        raise ImageError(
            f"lists {len(table)} sections, header says {header.section_count}", "manifest"
        )
    offset, names = 0, set()
    for i, row in enumerate(table):
        ok = (
            isinstance(row, dict)
            and set(row) == {"name", "offset", "size", "sha256"}
            and isinstance(row["name"], str)
            and _SECTION_NAME.fullmatch(row["name"]) is not None
            and isinstance(row["offset"], int)
            and isinstance(row["size"], int)
            and not isinstance(row["size"], bool)
            and row["size"] >= 0
            and isinstance(row["sha256"], str)
            and _SHA_HEX.fullmatch(row["sha256"]) is not None
        )
        if not ok:
            raise ImageError(f"section table entry {i} is malformed: {row!r:.80}", "manifest")
        if row["name"] in names:
            raise ImageError(f"section '{row['name']}' listed twice", "manifest")
        if row["offset"] != offset:
            raise ImageError(
                f"section '{row['name']}' at offset {row['offset']}, expected {offset}",
                "manifest",
            )
        names.add(row["name"])
        offset += row["size"]
    if offset != header.sections_size:
        raise ImageError(
            f"sections add up to {offset} bytes, header says {header.sections_size}", "manifest"
        )
    return manifest


def _check_sections(data: bytes, header: ImageHeader, manifest: dict) -> dict[str, bytes]:
    start = header.sections_offset
    sections = {}
    for row in manifest["sections"]:
        blob = data[start + row["offset"] : start + row["offset"] + row["size"]]
        actual = hashlib.sha256(blob).hexdigest()
        if actual != row["sha256"]:
            raise ImageError(
                f"SHA-256 mismatch (manifest records {row['sha256'][:16]}..., "
                f"content hashes to {actual[:16]}...)",
                f"section '{row['name']}'",
            )
        sections[row["name"]] = blob
    return sections


def read_image(data: bytes) -> Image:
    """Parse ``data`` and check its integrity: header checksum, sizes, trailer structure,
    the protected area's SHA-256 and every region's own digest (naming the first region
    that does not match). The signature is not checked: see :func:`verify_image`."""
    data = bytes(data)
    header = _parse_header(data)
    tlvs = _parse_trailer(data, header.protected_size)
    digest = hashlib.sha256(memoryview(data)[: header.protected_size]).digest()
    manifest = _parse_manifest(data, header)
    sections = _check_sections(data, header, manifest)
    if digest != tlvs[TLV_SHA256]:
        raise ImageError(
            "the SHA-256 of header, body and protected TLVs does not match the SHA256 entry, "
            "although every region with its own checksum matches: the version field, a "
            "protected TLV value or the SHA256 entry itself was altered",
            "digest",
        )
    return Image(
        header=header,
        manifest=manifest,
        sections=sections,
        key_id=tlvs[TLV_KEYHASH].hex(),
        digest=digest.hex(),
        signature=tlvs[TLV_ED25519].hex(),
        trailer_size=len(data) - header.protected_size,
    )


def payload_bytes(data: bytes) -> bytes:
    """The spikeflight payload (the MCUboot body) of a well-formed image: what
    ``imgtool sign --pad-header -H 32`` takes to make the same image under its own hand."""
    header = read_image(data).header
    return bytes(data[header.header_size : header.header_size + header.body_size])


def _signature_ok(public_key: Ed25519PublicKey, image: Image) -> bool:
    try:
        public_key.verify(bytes.fromhex(image.signature), bytes.fromhex(image.digest))
    except InvalidSignature:
        return False
    return True


def verify_image(data: bytes, public_key: Ed25519PublicKey) -> Image:
    """:func:`read_image`, then check that the image was signed by ``public_key``: the
    KEYHASH entry names that key and the Ed25519 signature over the SHA-256 verifies."""
    image = read_image(data)
    expected = key_id(public_key)
    if image.key_id != expected:
        if _signature_ok(public_key, image):
            raise ImageError(
                f"KEYHASH entry {image.key_id[:16]} does not match the key that made the "
                f"signature ({expected[:16]})",
                "trailer",
            )
        raise ImageError(
            f"image signed by key id {image.key_id[:16]}, not by the given key {expected[:16]}",
            "key",
        )
    if not _signature_ok(public_key, image):
        raise ImageError(f"Ed25519 verification failed with key {expected[:16]}", "signature")
    return image


# --- files ------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> bytes:
    """The bytes of an image file (no checks of its content); one-line :class:`ImageError`
    if it is unreadable, not a regular file or larger than ``MAX_IMAGE_BYTES``."""
    try:
        return read_input(path, "image file", MAX_IMAGE_BYTES)
    except OSError as exc:
        raise ImageError(str(exc)) from None


def write_image(path: str | os.PathLike, data: bytes) -> Path:
    """Check that ``data`` is a well-formed image (:func:`read_image`), then publish it at
    ``path`` atomically: readers see the old file or the whole new one, and a failure
    leaves no file behind."""
    read_image(data)
    try:
        with AtomicFile(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ImageError(f"cannot write image file {path}: {exc.strerror}") from None
    return Path(path)
