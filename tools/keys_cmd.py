"""``spikeflight keys``: Ed25519 signing keys for policy images."""

from __future__ import annotations

from pathlib import Path

import typer

from tools.options import output_file
from tools.progress import console

app = typer.Typer(no_args_is_help=True, help="Ed25519 signing keys for policy images.")


@app.command("generate")
def generate(
    out: Path = typer.Option(
        ..., "--out", "-o", help="private key file NAME; the public key goes to NAME.pub",
        callback=output_file),
    force: bool = typer.Option(False, "--force", help="replace existing key files"),
) -> None:
    """Write a new key pair: NAME (PEM PKCS#8, mode 0600) and NAME.pub (PEM), and print
    its key id (SHA-256 of the DER public key, as MCUboot's KEYHASH)."""
    from runtime.keys import key_id, load_public_key, save_keypair, short_id

    priv_path, pub_path = save_keypair(out, force=force)
    kid = key_id(load_public_key(pub_path))
    console.print(
        f"wrote {priv_path} (private, keep secret) and {pub_path}: key id {short_id(kid)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(f"key id (full) {kid}", highlight=False, soft_wrap=True)
