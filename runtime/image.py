"""The signed policy image (``.sfimg``): the contract between compiler and runtime.

The layout follows MCUboot's ideas (fixed header, protected area, TLV trailer with SHA-256,
KEYHASH and Ed25519 entries using MCUboot's TLV type numbers) but is **not**
MCUboot-compatible: own magic, own header, a JSON manifest and named sections. All integers
are little-endian.

Protected area (covered by the SHA-256 and hence by the signature)::

    offset    size  field
    --------  ----  ---------------------------------------------------------------
    0         4     magic b"SFIM"
    4         2     header_size, u16 (72)
    6         2     format_version, u16 (1; other versions are refused)
    8         1     target class, u8: 0 loihi2, 1 cpu, 2 cpu-fixed
    9         1     reserved, 0
    10        2     flags, u16 (none defined yet: 0)
    12        1     version major, u8
    13        1     version minor, u8
    14        2     version revision, u16
    16        4     version build, u32
    20        4     security_counter, u32 (monotonic anti-rollback counter)
    24        4     manifest_size M, u32
    28        4     section_count N, u32
    32        4     sections_size S, u32
    36        32    SHA-256 of the manifest bytes
    68        4     CRC-32 (zlib) of header bytes 0..67
    72        M     manifest: canonical JSON (UTF-8, sorted keys, compact, no NaN)
    72+M      S     sections, back to back in manifest order, no padding

The manifest is the compiler's dict plus a ``sections`` table added by the packer: a list of
``{"name", "offset", "size", "sha256"}`` with offsets relative to byte 72 + M.

Trailer (not protected; starts at P = 72 + M + S)::

    offset    size  field
    --------  ----  ---------------------------------------------------------------
    P         2     TLV info magic, u16 0x5346 (MCUboot's is 0x6907)
    P+2       2     trailer length T including these 4 bytes, u16 (144)
    P+4       4+32  TLV 0x10 SHA256: type u16, length u16, SHA-256 of bytes [0, P)
    P+40      4+32  TLV 0x01 KEYHASH: SHA-256 of the raw 32-byte Ed25519 public key
    P+76      4+64  TLV 0x24 ED25519: signature over the 32-byte SHA256 value
    P+T             end of file (nothing may follow)

MCUboot keeps the security counter in a protected TLV (0x50); here it is a header field,
equally covered by the signature. Failures raise :class:`ImageError` naming the region:
``header``, ``manifest``, ``section 'NAME'``, ``trailer``, ``key`` or ``signature``.
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
from runtime.keys import key_hash, key_id

TARGETS = ("loihi2", "cpu", "cpu-fixed")
MAGIC = b"SFIM"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
HEADER_SIZE = 72
TLV_INFO_MAGIC = 0x5346
TLV_KEYHASH = 0x01
TLV_SHA256 = 0x10
TLV_ED25519 = 0x24
TLV_NAMES = {TLV_KEYHASH: "KEYHASH", TLV_SHA256: "SHA256", TLV_ED25519: "ED25519"}
TLV_LENGTHS = {TLV_SHA256: 32, TLV_KEYHASH: 32, TLV_ED25519: 64}
TLV_ORDER = (TLV_SHA256, TLV_KEYHASH, TLV_ED25519)

_HEADER = struct.Struct("<4sHHBBHBBHIIIII32sI")
_TLV_INFO = struct.Struct("<HH")
_TLV = struct.Struct("<HH")
_U32 = 0xFFFFFFFF
_SECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\+(0|[1-9]\d*))?")
_SHA_HEX = re.compile(r"[0-9a-f]{64}")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
assert _HEADER.size == HEADER_SIZE


class ImageError(SpikeflightError):
    """A bad image, or bad input to the packer. ``region`` is the part that failed
    (``header``, ``manifest``, ``section 'NAME'``, ``trailer``, ``key``, ``signature``) and
    leads the message, or None."""

    def __init__(self, message: str, region: str | None = None) -> None:
        super().__init__(f"{region}: {message}" if region else message)
        self.region = region


class PackError(ImageError, ValueError):
    """Bad input to :func:`pack_image` or :func:`arrays_to_bytes`; raised before any byte
    is produced."""


@dataclass(frozen=True)
class ImageHeader:
    """The decoded fixed header (see the module docstring for the byte layout)."""

    format_version: int
    header_size: int
    target: str
    flags: int
    version_major: int
    version_minor: int
    version_revision: int
    version_build: int
    security_counter: int
    manifest_size: int
    section_count: int
    sections_size: int
    manifest_sha256: str
    header_crc32: int

    @property
    def version(self) -> str:
        """``MAJOR.MINOR.REVISION`` with ``+BUILD`` when the build number is not 0."""
        core = f"{self.version_major}.{self.version_minor}.{self.version_revision}"
        return f"{core}+{self.version_build}" if self.version_build else core

    @property
    def protected_size(self) -> int:
        """Bytes covered by the SHA-256: header + manifest + sections."""
        return self.header_size + self.manifest_size + self.sections_size


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
        header = asdict(self.header)
        header["version"] = self.header.version
        start = self.header.header_size + self.header.manifest_size
        sections = [{**row, "file_offset": start + row["offset"]} for row in self.section_table]
        tlvs = [{"type": t, "name": TLV_NAMES[t], "length": TLV_LENGTHS[t]} for t in TLV_ORDER]
        trailer = {
            "offset": self.header.protected_size,
            "size": self.trailer_size,
            "sha256": self.digest,
            "key_id": self.key_id,
            "signature": self.signature,
            "tlvs": tlvs,
        }
        return {
            "file_size": self.size,
            "header": header,
            "manifest": self.manifest,
            "sections": sections,
            "trailer": trailer,
        }


# --- arrays <-> bytes -------------------------------------------------------------------


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` archive of ``arrays`` (what ``np.savez`` writes, but with
    fixed zip timestamps so that the same arrays always give the same bytes). Object
    arrays are refused: a weight section never carries pickles."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            if not isinstance(name, str) or not name or "/" in name or "\x00" in name:
                raise PackError(f"array name {name!r} is not a plain non-empty string")
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise PackError(f"array '{name}' has dtype object; only plain arrays are stored")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
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


def pack_image(
    manifest: dict,
    sections: dict[str, bytes],
    *,
    target: str,
    version: str,
    security_counter: int,
    private_key: Ed25519PrivateKey,
    flags: int = 0,
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
    if not isinstance(flags, int) or not 0 <= flags <= 0xFFFF:
        raise PackError(f"flags {flags!r} is not a u16")
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
    if offset > _U32 or len(manifest_bytes) > _U32:
        raise PackError("image too large: manifest and sections must each stay below 4 GiB")
    head = _HEADER.pack(
        MAGIC,
        HEADER_SIZE,
        FORMAT_VERSION,
        TARGETS.index(target),
        0,
        flags,
        major,
        minor,
        revision,
        build,
        security_counter,
        len(manifest_bytes),
        len(table),
        offset,
        hashlib.sha256(manifest_bytes).digest(),
        0,
    )[:-4]
    head += struct.pack("<I", zlib.crc32(head))
    protected = b"".join([head, manifest_bytes, *blobs])
    digest = hashlib.sha256(protected).digest()
    values = {
        TLV_SHA256: digest,
        TLV_KEYHASH: key_hash(private_key.public_key()),
        TLV_ED25519: private_key.sign(digest),
    }
    tlvs = b"".join(_TLV.pack(t, len(values[t])) + values[t] for t in TLV_ORDER)
    return protected + _TLV_INFO.pack(TLV_INFO_MAGIC, _TLV_INFO.size + len(tlvs)) + tlvs


# --- reading ----------------------------------------------------------------------------


def _parse_header(data: bytes) -> ImageHeader:
    if len(data) < 8:
        raise ImageError(f"truncated: file is {len(data)} bytes, the header alone is 72", "header")
    if data[:4] != MAGIC:
        raise ImageError(f"bad magic {data[:4]!r}, expected {MAGIC!r} (not an image)", "header")
    header_size, fmt = struct.unpack_from("<HH", data, 4)
    if fmt not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise ImageError(f"unsupported format version {fmt} (reads {supported})", "header")
    if header_size != HEADER_SIZE:
        raise ImageError(f"header size {header_size}, format {fmt} has {HEADER_SIZE}", "header")
    if len(data) < HEADER_SIZE:
        raise ImageError(f"truncated: file is {len(data)} bytes, the header alone is 72", "header")
    f = _HEADER.unpack_from(data)
    crc = zlib.crc32(data[: HEADER_SIZE - 4])
    if crc != f[15]:
        raise ImageError(
            f"checksum mismatch (recorded 0x{f[15]:08x}, computed 0x{crc:08x})", "header"
        )
    if f[4] != 0:
        raise ImageError(f"reserved byte is 0x{f[4]:02x}, not 0", "header")
    if f[3] >= len(TARGETS):
        raise ImageError(f"unknown target class {f[3]}", "header")
    header = ImageHeader(
        format_version=fmt,
        header_size=header_size,
        target=TARGETS[f[3]],
        flags=f[5],
        version_major=f[6],
        version_minor=f[7],
        version_revision=f[8],
        version_build=f[9],
        security_counter=f[10],
        manifest_size=f[11],
        section_count=f[12],
        sections_size=f[13],
        manifest_sha256=f[14].hex(),
        header_crc32=f[15],
    )
    if len(data) < header.protected_size:
        raise ImageError(
            f"truncated: header + manifest + sections need {header.protected_size} bytes, "
            f"file has {len(data)}",
            "header",
        )
    return header


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
    tlvs: dict[int, bytes] = {}
    pos, end = start + _TLV_INFO.size, start + total
    while pos < end:
        if end - pos < _TLV.size:
            raise ImageError(f"TLV header at byte {pos} runs past the end", "trailer")
        kind, length = _TLV.unpack_from(data, pos)
        pos += _TLV.size
        if kind not in TLV_LENGTHS:
            raise ImageError(f"unknown TLV type 0x{kind:02x} at byte {pos - 4}", "trailer")
        if kind in tlvs:
            raise ImageError(f"duplicate {TLV_NAMES[kind]} TLV", "trailer")
        if length != TLV_LENGTHS[kind]:
            raise ImageError(
                f"{TLV_NAMES[kind]} TLV has length {length}, expected {TLV_LENGTHS[kind]}",
                "trailer",
            )
        if pos + length > end:
            raise ImageError(f"{TLV_NAMES[kind]} TLV runs past the end", "trailer")
        tlvs[kind] = data[pos : pos + length]
        pos += length
    missing = [TLV_NAMES[t] for t in TLV_ORDER if t not in tlvs]
    if missing:
        raise ImageError(f"missing TLV {', '.join(missing)}", "trailer")
    return tlvs


def _parse_manifest(data: bytes, header: ImageHeader) -> dict:
    raw = data[header.header_size : header.header_size + header.manifest_size]
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
    start = header.header_size + header.manifest_size
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
            "SHA256 entry does not match the protected area, although header, manifest and "
            "every section match their recorded digests",
            "trailer",
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
    """The bytes of an image file (no checks); one-line :class:`ImageError` if unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file {path} not found") from None
    except OSError as exc:
        raise ImageError(f"cannot read image file {path}: {exc.strerror}") from None


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
