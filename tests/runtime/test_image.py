"""runtime.image / runtime.keys: the signed image format, tamper detection, key files."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hardware.errors import SpikeflightError
from runtime.image import (
    HEADER_SIZE,
    PAYLOAD_HEADER_SIZE,
    TARGETS,
    Image,
    ImageError,
    PackError,
    arrays_to_bytes,
    bytes_to_arrays,
    load_image,
    pack_image,
    read_image,
    verify_image,
    write_image,
)
from runtime.keys import (
    KeyFileError,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    save_keypair,
)

MANIFEST = {"policy": "sdp-toy", "schedule": {"K": 20, "betas": [0.1, 0.2]}, "note": "ü"}
PRIV, PUB = generate_keypair()
OTHER_PRIV, OTHER_PUB = generate_keypair()


def _sections() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "graph.onnx": rng.integers(0, 256, 48, dtype=np.uint8).tobytes(),
        "weights": arrays_to_bytes({"w": rng.normal(size=(3, 4)).astype(np.float32)}),
        "golden": rng.integers(0, 256, 24, dtype=np.uint8).tobytes(),
        "empty": b"",
    }


def _pack(**kw) -> bytes:
    args = dict(target="cpu-fixed", version="1.2.3+4", security_counter=7, private_key=PRIV)
    return pack_image(
        kw.pop("manifest", MANIFEST), kw.pop("sections", _sections()), **{**args, **kw}
    )


IMG = _pack()


def _flip(data: bytes, offset: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def _resign_header(data: bytes, **fields: int) -> bytes:
    """Patch u16 payload header fields by name and recompute the payload header CRC."""
    where = {"format_version": 4, "payload_header_size": 6}
    out = bytearray(data)
    for name, value in fields.items():
        struct.pack_into("<H", out, HEADER_SIZE + where[name], value)
    end = HEADER_SIZE + PAYLOAD_HEADER_SIZE - 4
    struct.pack_into("<I", out, end, zlib.crc32(out[HEADER_SIZE:end]))
    return bytes(out)


# --- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_round_trip(target: str) -> None:
    sections = _sections()
    data = _pack(target=target, sections=sections)
    img = read_image(data)
    assert isinstance(img, Image)
    assert {k: v for k, v in img.manifest.items() if k != "sections"} == MANIFEST
    assert img.sections == sections and list(img.sections) == list(sections)
    h = img.header
    assert (h.target, h.version, h.security_counter, h.format_version) == (target, "1.2.3+4", 7, 2)
    assert (h.version_major, h.version_minor, h.version_revision, h.version_build) == (1, 2, 3, 4)
    assert h.section_count == 4 and h.sections_size == sum(map(len, sections.values()))
    assert img.size == len(data) and img.trailer_size == 144
    assert img.digest == hashlib.sha256(data[: h.protected_size]).hexdigest()
    assert img.key_id == key_id(PUB)
    start = h.sections_offset
    for row in img.section_table:
        blob = data[start + row["offset"] : start + row["offset"] + row["size"]]
        assert blob == sections[row["name"]]
        assert row["sha256"] == hashlib.sha256(blob).hexdigest()
    np.testing.assert_array_equal(
        img.arrays("weights")["w"], bytes_to_arrays(sections["weights"])["w"]
    )


def test_version_without_build_and_json_view() -> None:
    img = read_image(_pack(version="0.10.65535", security_counter=0))
    assert img.header.version == "0.10.65535" and img.header.version_build == 0
    d = img.to_dict()
    assert set(d) >= {"header", "manifest", "sections", "trailer"}
    assert d["trailer"]["key_id"] == key_id(PUB) and d["header"]["security_counter"] == 0
    assert [s["name"] for s in d["sections"]] == list(_sections())


def test_packing_is_reproducible() -> None:
    """Same inputs, same bytes (Ed25519 is deterministic; npz blobs carry no timestamps)."""
    assert _pack() == IMG
    with zipfile.ZipFile(io.BytesIO(_sections()["weights"])) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# --- verification -----------------------------------------------------------------------


def test_verify_ok_with_the_right_key() -> None:
    img = verify_image(IMG, PUB)
    assert img.key_id == key_id(PUB) and img.sections["golden"] == _sections()["golden"]


def test_wrong_key_is_named() -> None:
    with pytest.raises(ImageError) as err:
        verify_image(IMG, OTHER_PUB)
    assert err.value.region == "key"
    msg = str(err.value)
    assert msg.startswith("key: image signed by key id ")
    assert key_id(PUB)[:16] in msg and key_id(OTHER_PUB)[:16] in msg


def test_consistent_forgery_fails_only_on_the_signature() -> None:
    """Change the manifest and re-hash everything (as an attacker without the key could),
    keeping the original KEYHASH and signature: integrity checks pass, the signature not."""
    forged = _pack(manifest={**MANIFEST, "policy": "evil"})
    p = read_image(forged).header.protected_size
    trailer = bytearray(IMG[read_image(IMG).header.protected_size :])
    trailer[8:40] = hashlib.sha256(forged[:p]).digest()  # SHA256 value; keep KEYHASH, sig
    forged = forged[:p] + bytes(trailer)
    read_image(forged)  # structurally sound, hashes match
    with pytest.raises(ImageError, match=r"^signature: Ed25519 verification failed"):
        verify_image(forged, PUB)


def _expected_region(img: Image, offset: int, flipped: int) -> str:
    """The region a byte at ``offset`` changed to ``flipped`` must be blamed on."""
    h = img.header
    if offset < h.manifest_offset:
        # MCUboot header (version at 20..28: covered by the SHA-256 alone), payload header
        return "digest" if 20 <= offset < 28 else "header"
    if offset < h.sections_offset:
        return "manifest"
    for row in img.section_table:
        start = h.sections_offset + row["offset"]
        if start <= offset < start + row["size"]:
            return f"section '{row['name']}'"
    if offset < h.protected_size:
        # protected TLVs: info 0..4, SEC_CNT TLV 4..12 (value 8..12), TARGET TLV 12..17
        rel = offset - (h.header_size + h.body_size)
        if 8 <= rel < 12 or (rel == 16 and flipped < len(TARGETS)):
            return "digest"
        return "protected TLVs"
    t = offset - h.protected_size
    # trailer: info 0..4, SHA256 TLV 4..40, KEYHASH TLV 40..76, ED25519 TLV 76..80 + 64.
    # A corrupted KEYHASH value is a trailer fault: the signature verifies with the key.
    if 8 <= t < 40:
        return "digest"
    return "signature" if 80 <= t < 144 else "trailer"


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_flipped_byte_is_caught_and_located(mask: int) -> None:
    good = read_image(IMG)
    assert good.section_table[-1]["size"] == 0  # an empty section must not confuse it
    wrong = []
    for offset in range(len(IMG)):
        expected = _expected_region(good, offset, IMG[offset] ^ mask)
        try:
            verify_image(_flip(IMG, offset, mask), PUB)
        except ImageError as exc:
            if exc.region != expected or not str(exc).startswith(f"{expected}: "):
                wrong.append(f"byte {offset}: expected {expected}, got {exc}")
        else:
            wrong.append(f"byte {offset}: not detected")
    assert not wrong, "\n".join(wrong[:20])
    seen = {_expected_region(good, o, IMG[o] ^ mask) for o in range(len(IMG))}
    assert seen == {"header", "manifest", "protected TLVs", "digest", "trailer", "signature"} | {
        f"section '{n}'" for n in ("graph.onnx", "weights", "golden")
    }


def test_flipped_sha256_entry_or_version_is_a_digest_fault() -> None:
    p = read_image(IMG).header.protected_size
    for offset in (p + 8, 20):
        with pytest.raises(ImageError, match=r"^digest: the SHA-256 of header, body and "):
            read_image(_flip(IMG, offset))


@pytest.mark.parametrize("cut", [0, 3, 40, HEADER_SIZE, 200, -145, -144, -143, -1])
def test_truncated_file(cut: int) -> None:
    data = IMG[:cut] if cut >= 0 else IMG[: len(IMG) + cut]
    with pytest.raises(ImageError, match="truncated") as err:
        read_image(data)
    assert err.value.region == ("trailer" if cut in (-144, -143, -1) else "header")


def test_appended_bytes_are_refused() -> None:
    with pytest.raises(ImageError, match=r"^trailer: .*extra bytes"):
        verify_image(IMG + b"\x00", PUB)


def test_unknown_format_version_and_header_size() -> None:
    with pytest.raises(ImageError, match=r"^header: unsupported format version 1 \(reads 2\)"):
        read_image(_resign_header(IMG, format_version=1))
    with pytest.raises(ImageError, match=r"^header: payload header size 80"):
        read_image(_resign_header(IMG, payload_header_size=80))
    assert read_image(_resign_header(IMG)).digest == read_image(IMG).digest  # helper sound


def test_not_an_image() -> None:
    with pytest.raises(ImageError, match=r"^header: bad magic 0x04034b50, expected 0x96f3b83d"):
        read_image(_sections()["weights"])


# --- arrays -----------------------------------------------------------------------------


def test_arrays_round_trip() -> None:
    arrays = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "q": np.array([-256, 254, 0], dtype=np.int16),
        "mask": np.array([True, False]),
        "f": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "none": np.zeros((0, 5), dtype=np.int8),
    }
    back = bytes_to_arrays(arrays_to_bytes(arrays))
    assert list(back) == list(arrays)
    for name, arr in arrays.items():
        assert back[name].dtype == arr.dtype and back[name].shape == arr.shape
        np.testing.assert_array_equal(back[name], arr)


class _Boom:
    """Unpickling this creates the marker file: proof that code would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (self.marker.touch, ())


def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = _Boom(marker)
    buf = io.BytesIO()
    np.savez(buf, w=np.ones(3), evil=obj)
    with pytest.raises(ImageError, match="pickled Python objects; refused"):
        bytes_to_arrays(buf.getvalue(), what="section 'weights'")
    assert not marker.exists()
    with pytest.raises(PackError, match="'evil' has dtype object"):
        arrays_to_bytes({"evil": obj})
    assert not marker.exists()


def test_non_npz_blobs_are_refused() -> None:
    npy = io.BytesIO()
    np.save(npy, np.ones(3))
    for blob in (b"", b"garbage", npy.getvalue()):
        with pytest.raises(ImageError, match=r"^w: not an \.npz archive"):
            bytes_to_arrays(blob, what="w")


# --- bad input to the packer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"target": "gpu"}, "target 'gpu' is not one of: loihi2, cpu, cpu-fixed"),
        ({"version": "1.2"}, "version '1.2' is not MAJOR.MINOR.PATCH"),
        ({"version": "v1.2.3"}, "version 'v1.2.3'"),
        ({"version": "1.2.3.4"}, "version '1.2.3.4'"),
        ({"version": "256.0.0"}, "major 256 exceeds 255"),
        ({"version": "1.0.65536"}, "patch 65536 exceeds 65535"),
        ({"version": "1.0.0+4294967296"}, "build 4294967296 exceeds"),
        ({"security_counter": -1}, "security counter -1"),
        ({"security_counter": 2**32}, "security counter 4294967296"),
        ({"security_counter": True}, "security counter True"),
        ({"sections": {"bad name": b""}}, "section name 'bad name'"),
        ({"sections": {"": b""}}, "section name ''"),
        ({"sections": {"../x": b""}}, "section name '../x'"),
        ({"sections": {"wéights": b""}}, "section name 'wéights'"),
        ({"sections": {"x" * 64: b""}}, "section name 'xxx"),
        ({"sections": {"w": "text"}}, "section 'w' is a str, not bytes"),
        ({"manifest": {"sections": []}}, "'sections' is reserved"),
        ({"manifest": {"a": {"b": np.int64(3)}}}, "manifest['a']['b'] is a int64"),
        ({"manifest": {"a": [float("nan")]}}, "manifest['a'][0] is nan"),
        ({"manifest": {1: 2}}, "non-string key 1"),
        ({"manifest": [1]}, "manifest is a list"),
        ({"private_key": OTHER_PUB}, "not Ed25519"),
    ],
)
def test_bad_pack_input_is_refused_before_writing(tmp_path: Path, kw: dict, needle: str) -> None:
    out = tmp_path / "p.sfimg"
    with pytest.raises(PackError) as err:
        write_image(out, _pack(**kw))
    assert isinstance(err.value, ValueError) and isinstance(err.value, SpikeflightError)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


# --- files ------------------------------------------------------------------------------


def test_write_and_load_image(tmp_path: Path) -> None:
    out = write_image(tmp_path / "sub" / "p.sfimg", IMG)
    assert load_image(out) == IMG
    newer = _pack(security_counter=8)
    write_image(out, newer)
    assert load_image(out) == newer and sorted(p.name for p in out.parent.iterdir()) == ["p.sfimg"]


def test_write_image_refuses_a_broken_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^manifest: "):
        write_image(tmp_path / "p.sfimg", _flip(IMG, read_image(IMG).header.manifest_offset + 3))
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    real = Path.write_bytes

    def half_then_enospc(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_enospc)
    with pytest.raises(ImageError, match=r"cannot write image file .*No space left"):
        write_image(tmp_path / "p.sfimg", IMG)
    assert not list(tmp_path.iterdir())


def test_load_image_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"image file .*missing\.sfimg not found"):
        load_image(tmp_path / "missing.sfimg")
    with pytest.raises(ImageError, match=rf"image file {tmp_path} is a directory, not a file"):
        load_image(tmp_path)


# --- keys -------------------------------------------------------------------------------


def test_save_keypair_files_modes_and_key_id(tmp_path: Path) -> None:
    priv_path, pub_path = save_keypair(tmp_path / "flight", PRIV)
    assert pub_path == tmp_path / "flight.pub"
    assert stat.S_IMODE(os.stat(priv_path).st_mode) == 0o600
    assert priv_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    pub = load_public_key(pub_path)
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(pub) == hashlib.sha256(der).hexdigest() == key_id(PUB)
    again = load_private_key(priv_path)
    verify_image(_pack(private_key=again), PUB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flight", "flight.pub"]


def test_save_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    save_keypair(tmp_path / "k", PRIV)
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(KeyFileError, match=rf"^{tmp_path / 'k'} already exists"):
        save_keypair(tmp_path / "k")
    (tmp_path / "k").unlink()
    with pytest.raises(KeyFileError, match=r"k\.pub already exists"):
        save_keypair(tmp_path / "k")
    assert not (tmp_path / "k").exists()
    save_keypair(tmp_path / "k", OTHER_PRIV, force=True)
    assert (tmp_path / "k").read_bytes() != before
    assert key_id(load_public_key(tmp_path / "k.pub")) == key_id(OTHER_PUB)


def test_key_loading_errors_name_the_file(tmp_path: Path) -> None:
    save_keypair(tmp_path / "k", PRIV)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / "rsa").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "rsa.pub").write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "junk").write_text("hello\n")
    cases = [
        (load_private_key, "missing", "private key file .*missing not found"),
        (load_private_key, "k.pub", "k.pub holds a public key; a private key is expected"),
        (load_private_key, "rsa", "expected an Ed25519 private key, found RSA"),
        (load_private_key, "junk", "junk is not a PEM private key"),
        (load_public_key, "missing.pub", "public key file .*missing.pub not found"),
        (load_public_key, "k", "k holds a private key; pass the public key"),
        (load_public_key, "rsa.pub", "expected an Ed25519 public key, found RSA"),
        (load_public_key, "junk", "junk is not a PEM public key"),
    ]
    for loader, name, pattern in cases:
        with pytest.raises(KeyFileError, match=pattern) as err:
            loader(tmp_path / name)
        assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
