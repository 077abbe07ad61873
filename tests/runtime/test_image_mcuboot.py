"""MCUboot interop both ways: imgtool reads and verifies spikeflight images, and a
spikeflight payload signed by imgtool verifies and flies on the runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hardware.sim.registry import make_env
from runtime.image import (
    IMAGE_MAGIC,
    TARGETS,
    TLV_ED25519,
    TLV_KEYHASH,
    TLV_SEC_CNT,
    TLV_SHA256,
    TLV_TARGET,
    ImageError,
    load_image,
    payload_bytes,
    read_image,
    verify_image,
)
from runtime.keys import key_id, load_public_key

IMGTOOL = str(Path(sys.executable).parent / "imgtool")


def _imgtool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([IMGTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def _sign(payload: Path, out: Path, key: Path, *extra: str) -> subprocess.CompletedProcess:
    return _imgtool("sign", "-k", key, "--pad-header", "-H", "32", "-S", "0x1000000",
                    *extra, payload, out)


def _private(pub: Path) -> Path:
    return pub.with_suffix("")


def test_imgtool_verifies_a_compiled_image_and_rejects_a_tampered_one(flight_image,
                                                                      tmp_path: Path) -> None:
    image, pub = flight_image
    for key in (pub, _private(pub)):
        res = _imgtool("verify", "-k", key, image)
        assert res.returncode == 0 and "Image was correctly validated" in res.stdout, res
    digest = read_image(load_image(image)).digest
    assert f"Image digest: {digest}" in res.stdout
    data = bytearray(load_image(image))
    data[len(data) // 2] ^= 0x01  # inside a section
    bad = tmp_path / "bad.sfimg"
    bad.write_bytes(bytes(data))
    res = _imgtool("verify", "-k", pub, bad)
    assert res.returncode == 1 and "invalid hash" in res.stdout


def test_imgtool_rejects_an_image_signed_by_another_key(flight_image, tmp_path: Path) -> None:
    image, _ = flight_image
    other = tmp_path / "other.pem"
    assert _imgtool("keygen", "-k", other, "-t", "ed25519").returncode == 0
    res = _imgtool("verify", "-k", other, image)
    assert res.returncode == 1 and "No signature found for the given key" in res.stdout


def test_imgtool_dumpinfo_reads_header_and_tlvs(flight_image, tmp_path: Path) -> None:
    image, pub = flight_image
    img = read_image(load_image(image))
    out = tmp_path / "info.json"
    res = _imgtool("dumpinfo", "-f", "json", "-o", out, image)
    assert res.returncode == 0, res.stderr
    info = json.loads(out.read_text())
    h = info["header"]
    hv = img.header
    version = f"{hv.version_major}.{hv.version_minor}.{hv.version_revision}+{hv.version_build}"
    assert (h["magic"], h["hdr_size"], h["img_size"], h["version"]) == (
        IMAGE_MAGIC, 32, hv.body_size, version)
    assert h["protected_tlv_size"] == img.header.protected_tlv_size
    prot = {t["type"]: t["data"] for t in info["tlv_area"]["tlvs_prot"]}
    assert prot[TLV_SEC_CNT] == img.header.security_counter.to_bytes(4, "little").hex()
    assert prot[TLV_TARGET] == bytes([TARGETS.index(img.header.target)]).hex()
    tlvs = {t["type"]: t["data"] for t in info["tlv_area"]["tlvs"]}
    assert tlvs[TLV_SHA256] == img.digest and tlvs[TLV_ED25519] == img.signature
    assert tlvs[TLV_KEYHASH] == img.key_id == key_id(load_public_key(pub))


def test_imgtool_signed_payload_is_the_same_image_and_flies(flight_image,
                                                            tmp_path: Path) -> None:
    """imgtool, given the payload, key, version, counter and target TLV of an image, signs
    it to the same bytes; with a new version and counter it still verifies and runs."""
    from runtime.backends import chain_for
    from runtime.executive import Executive
    from runtime.loader import load_flight_policy
    from runtime.telemetry import Telemetry

    image, pub = flight_image
    data = load_image(image)
    h = read_image(data).header
    payload = tmp_path / "payload.bin"
    payload.write_bytes(payload_bytes(data))
    target = f"0x{TARGETS.index(h.target):02x}"
    same = tmp_path / "same.sfimg"
    res = _sign(payload, same, _private(pub), "-v", h.version, "-s", str(h.security_counter),
                "--custom-tlv", "0xa0", target)
    assert res.returncode == 0, res.stderr
    assert same.read_bytes() == data
    newer = tmp_path / "newer.sfimg"
    res = _sign(payload, newer, _private(pub), "-v", "2.0.1+7", "-s", "9",
                "--custom-tlv", "0xa0", target)
    assert res.returncode == 0, res.stderr
    img = verify_image(newer.read_bytes(), load_public_key(pub))
    assert (img.header.version, img.header.security_counter) == ("2.0.1+7", 9)
    policy = load_flight_policy(newer, pub)
    env = make_env("hatch")
    with Telemetry(tmp_path / "t.jsonl") as tel:
        chain = chain_for(policy, "onnx-fixed", on_event=tel.event)
        try:
            res_ep = Executive(policy, chain, tel).run_episode(env, 10_001, 8)
        finally:
            chain.close()
    assert res_ep.steps == 8 and res_ep.chunks >= 2 and np.isfinite(res_ep.energy_j)


@pytest.mark.parametrize(("extra", "needle"), [
    ((), "protected TLVs: none, so no security counter and no target class"),
    (("-s", "3"), "protected TLVs: missing TLV TARGET (0xa0)"),
    (("--custom-tlv", "0xa0", "0x01"), "protected TLVs: missing TLV SEC_CNT (0x50)"),
    (("-s", "3", "--custom-tlv", "0xa0", "0x07"), "protected TLVs: unknown target class 7"),
])
def test_imgtool_signed_payload_without_our_protected_tlvs_is_refused(
        flight_image, tmp_path: Path, extra: tuple, needle: str) -> None:
    image, pub = flight_image
    payload = tmp_path / "payload.bin"
    payload.write_bytes(payload_bytes(load_image(image)))
    out = tmp_path / "out.sfimg"
    assert _sign(payload, out, _private(pub), "-v", "1.0.0", *extra).returncode == 0
    with pytest.raises(ImageError) as err:
        verify_image(out.read_bytes(), load_public_key(pub))
    assert str(err.value) == needle or str(err.value).startswith(needle)
