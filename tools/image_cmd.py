"""``spikeflight image``: inspect and verify signed policy images (``.sfimg``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from tools import json_out
from tools.progress import console

app = typer.Typer(no_args_is_help=True, help="Signed policy images: inspect, verify.")


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("inspect")
def inspect(
    image: Path = typer.Argument(..., help="image file (.sfimg)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Header, sections, manifest keys and trailer of an image. Checks structure and
    hashes (a broken image is an error, exit 2) but not the signature (see 'image verify')."""
    from runtime.image import PAYLOAD_HEADER_SIZE, ImageError, load_image, read_image
    from runtime.keys import short_id

    try:
        img = read_image(load_image(image))
    except ImageError as exc:
        raise ImageError(f"{image}: {exc}") from None
    if as_json:
        print(json_out.dumps({"file": str(image), **img.to_dict()}))
        return
    h = img.header
    _say(f"{image}  MCUboot image, spikeflight format {h.format_version}, {img.size} bytes")
    _say(f"target            {h.target}")
    _say(f"version           {h.version}")
    _say(f"security counter  {h.security_counter}")
    _say(f"MCUboot header    {h.header_size} bytes, body {h.body_size} bytes")
    _say(f"payload header    {PAYLOAD_HEADER_SIZE} bytes, crc32 0x{h.payload_crc32:08x}")
    _say(f"manifest          {h.manifest_size} bytes, sha256 {h.manifest_sha256[:16]}")
    _say(f"sections          {h.section_count}, {h.sections_size} bytes")
    _say(f"protected TLVs    {h.protected_tlv_size} bytes (SEC_CNT, target class 0xa0)")
    _say(f"TLV area          {img.trailer_size} bytes (SHA256, KEYHASH, ED25519)")
    _say(f"key id            {short_id(img.key_id)}")
    _say(f"sha256            {img.digest}")
    table = Table("section", "offset", "size", "sha256")
    for row in img.section_table:
        table.add_row(row["name"], str(row["offset"]), str(row["size"]), row["sha256"][:16])
    console.print(table)
    keys = [k for k in img.manifest if k != "sections"]
    _say(f"manifest keys     {', '.join(keys) or '(none)'}")


@app.command("verify")
def verify(
    image: Path = typer.Argument(..., help="image file (.sfimg)"),
    pubkey: Path = typer.Option(..., "--pubkey", "-k", help="public key file (NAME.pub)"),
) -> None:
    """Check an image's structure, SHA-256, key id and Ed25519 signature against a key.

    Exit codes:
    0 intact and signed by that key ("OK: ..." on stdout);
    1 verification failed ("FAILED: <reason>" on stderr);
    2 bad input (a missing or invalid key file, an unreadable image file).

    The reason names the failed region: header, manifest, section 'NAME', protected TLVs,
    trailer, digest, key, signature.
    """
    from runtime.image import ImageError, load_image, verify_image
    from runtime.keys import load_public_key, short_id

    key = load_public_key(pubkey)
    data = load_image(image)
    try:
        img = verify_image(data, key)
    except ImageError as exc:
        print(f"FAILED: {image}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    h = img.header
    print(
        f"OK: {image}: {h.target} {h.version}, security counter {h.security_counter}, "
        f"sha256 {img.digest[:16]}, signed by {short_id(img.key_id)}"
    )
