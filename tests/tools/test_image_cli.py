"""``spikeflight keys generate`` / ``image inspect`` / ``image verify``: files, output, exit
codes (0 ok, 1 verification failed, 2 bad input), one-line messages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.image import arrays_to_bytes, pack_image, read_image, write_image
from runtime.keys import key_id, load_private_key, load_public_key

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = {"policy": "sdp-toy", "K": 20, "T": 4}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def one_line(stream: str) -> str:
    assert "Traceback" not in stream
    lines = [ln for ln in stream.splitlines() if ln.strip()]
    assert len(lines) == 1, stream
    return lines[0]


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    line = one_line(res.stderr)
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A key pair made by ``keys generate``: returns the private key path."""
    name = tmp_path_factory.mktemp("keys") / "flight"
    res = cli("keys", "generate", "-o", str(name))
    assert res.returncode == 0, res.stderr
    return name


@pytest.fixture(scope="module")
def image(keys: Path, tmp_path_factory) -> Path:
    sections = {
        "graph.onnx": bytes(range(64)),
        "weights": arrays_to_bytes({"w": np.arange(8, dtype=np.int8).reshape(2, 4)}),
        "golden": b"\x07" * 32,
    }
    data = pack_image(
        MANIFEST,
        sections,
        target="cpu-fixed",
        version="2.0.1+9",
        security_counter=5,
        private_key=load_private_key(keys),
    )
    return write_image(tmp_path_factory.mktemp("img") / "policy.sfimg", data)


def _tampered(image: Path, tmp_path: Path, offset: int) -> Path:
    data = bytearray(image.read_bytes())
    data[offset] ^= 0x01
    out = tmp_path / "tampered.sfimg"
    out.write_bytes(bytes(data))
    return out


# --- keys -------------------------------------------------------------------------------


def test_keys_generate_writes_both_files(keys: Path) -> None:
    pub = Path(f"{keys}.pub")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id(load_private_key(keys).public_key()) == key_id(load_public_key(pub))


def test_keys_generate_prints_key_id_and_refuses_to_overwrite(tmp_path: Path) -> None:
    name = tmp_path / "k"
    res = cli("keys", "generate", "-o", str(name))
    assert res.returncode == 0, res.stderr
    kid = key_id(load_public_key(f"{name}.pub"))
    assert f"key id {kid[:16]}" in res.stdout
    before = name.read_bytes(), Path(f"{name}.pub").read_bytes()
    assert_one_line_error(
        cli("keys", "generate", "-o", str(name)), str(name), "already exists", "--force"
    )
    assert (name.read_bytes(), Path(f"{name}.pub").read_bytes()) == before
    res = cli("keys", "generate", "-o", str(name), "--force")
    assert res.returncode == 0, res.stderr
    assert name.read_bytes() != before[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k.pub"]


# --- inspect ----------------------------------------------------------------------------


def test_inspect_human(image: Path, keys: Path) -> None:
    res = cli("image", "inspect", str(image))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    img = read_image(image.read_bytes())
    for needle in (
        "cpu-fixed",
        "2.0.1+9",
        "security counter  5",
        "graph.onnx",
        "weights",
        "golden",
        img.section_table[1]["sha256"][:16],
        img.digest,
        key_id(load_public_key(f"{keys}.pub"))[:16],
        "K, T, policy",
        f"{image.stat().st_size} bytes",
    ):
        assert needle in out, (needle, out)


def test_inspect_json(image: Path, keys: Path) -> None:
    res = cli("image", "inspect", str(image), "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) >= {"header", "manifest", "sections", "trailer"}
    assert d["header"]["target"] == "cpu-fixed" and d["header"]["version"] == "2.0.1+9"
    assert d["header"]["security_counter"] == 5 and d["header"]["format_version"] == 2
    assert {k: v for k, v in d["manifest"].items() if k != "sections"} == MANIFEST
    assert [s["name"] for s in d["sections"]] == ["graph.onnx", "weights", "golden"]
    assert [s["size"] for s in d["sections"]][0] == 64
    assert d["trailer"]["key_id"] == key_id(load_public_key(f"{keys}.pub"))
    assert d["file_size"] == image.stat().st_size


def test_inspect_broken_image_is_an_error(image: Path, tmp_path: Path) -> None:
    img = read_image(image.read_bytes())
    offset = img.header.sections_offset + 70  # inside 'weights'
    bad = _tampered(image, tmp_path, offset)
    assert_one_line_error(
        cli("image", "inspect", str(bad)), str(bad), "section 'weights': SHA-256 mismatch"
    )
    assert_one_line_error(
        cli("image", "inspect", str(tmp_path / "nope.sfimg")), "nope.sfimg", "not found"
    )


# --- verify -----------------------------------------------------------------------------


def test_verify_ok(image: Path, keys: Path) -> None:
    res = cli("image", "verify", str(image), "--pubkey", f"{keys}.pub")
    assert res.returncode == 0, res.stderr
    kid = key_id(load_public_key(f"{keys}.pub"))
    line = one_line(res.stdout)
    assert line.startswith(f"OK: {image}") and line.endswith(f"signed by {kid[:16]}")


@pytest.mark.parametrize(
    ("where", "region"),
    [
        ("header", "header"),
        ("manifest", "manifest"),
        ("golden", "section 'golden'"),
        ("counter", "digest"),
        ("signature", "signature"),
        ("trailer", "trailer"),
    ],
)
def test_verify_tampered_exits_1(
    image: Path, keys: Path, tmp_path: Path, where: str, region: str
) -> None:
    h = read_image(image.read_bytes()).header
    offset = {
        "header": 12,  # MCUboot image size
        "manifest": h.manifest_offset + 5,
        "golden": h.header_size + h.body_size - 1,
        "counter": h.header_size + h.body_size + 8,  # SEC_CNT value, protected TLV
        "signature": h.protected_size + 100,
        "trailer": h.protected_size,
    }[where]
    bad = _tampered(image, tmp_path, offset)
    res = cli("image", "verify", str(bad), "--pubkey", f"{keys}.pub")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout == ""
    assert one_line(res.stderr).startswith(f"FAILED: {bad}: {region}: ")


def test_verify_wrong_key_exits_1(image: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("keys", "generate", "-o", str(other)).returncode == 0
    res = cli("image", "verify", str(image), "--pubkey", f"{other}.pub")
    assert res.returncode == 1, res.stdout + res.stderr
    line = one_line(res.stderr)
    assert line.startswith(f"FAILED: {image}: key: image signed by key id ")
    assert key_id(load_public_key(f"{other}.pub"))[:16] in line


def test_verify_bad_key_file_exits_2(image: Path, keys: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pub"
    assert_one_line_error(
        cli("image", "verify", str(image), "--pubkey", str(missing)),
        f"public key file {missing} not found",
    )
    assert_one_line_error(
        cli("image", "verify", str(image), "--pubkey", str(keys)), f"{keys} holds a private key"
    )
    assert_one_line_error(
        cli("image", "verify", str(tmp_path / "no.sfimg"), "--pubkey", f"{keys}.pub"),
        "no.sfimg not found",
    )
