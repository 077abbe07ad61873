"""Ed25519 signing keys for policy images: generate, save, load, identify.

Files (the layout of OpenSSH / imgtool key pairs):

=============  =================================================  ====
file           content                                            mode
=============  =================================================  ====
``NAME``       private key, PEM ``PRIVATE KEY`` (PKCS#8), clear    0600
``NAME.pub``   public key, PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo)  umask
=============  =================================================  ====

Both are written atomically (temp file, fsync, rename) and never over existing files unless
asked to. The key id is ``SHA-256(raw 32-byte public key)`` in hex, the value MCUboot calls
KEYHASH; human output shows its first 16 hex digits (:func:`short_id`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from hardware.files import read_input

MAX_KEY_BYTES = 64 * 1024  # a PEM Ed25519 key is a few hundred bytes

SHORT_ID_LEN = 16


class KeyFileError(SpikeflightError):
    """A key file is missing, exists already, or does not hold the expected Ed25519 key."""


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair from the OS's random source."""
    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


def public_path(name: str | os.PathLike) -> Path:
    """``NAME`` -> ``NAME.pub``."""
    return Path(f"{os.fspath(name)}.pub")


def spki_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo encoding of an Ed25519 public key (44 bytes): the form
    in which MCUboot embeds its keys and over which imgtool computes KEYHASH."""
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hash(public_key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo public key (32 bytes): MCUboot's KEYHASH,
    the same value ``imgtool sign`` writes for this key."""
    return hashlib.sha256(spki_public_bytes(public_key)).digest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id: :func:`key_hash` in hex (64 hex digits)."""
    return key_hash(public_key).hex()


def short_id(kid: str) -> str:
    """A key id shortened for human output (first 16 hex digits)."""
    return kid[:SHORT_ID_LEN]


def save_keypair(
    name: str | os.PathLike,
    private_key: Ed25519PrivateKey | None = None,
    *,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write ``private_key`` (a new one if None) to ``NAME`` and its public key to
    ``NAME.pub``; returns both paths. Refuses existing files unless ``force``."""
    priv_path = Path(name)
    pub_path = public_path(name)
    if priv_path.name.endswith(".pub"):
        raise KeyFileError(f"{priv_path}: a private key name must not end in .pub")
    if not force:
        for path in (priv_path, pub_path):
            if path.exists() or path.is_symlink():
                raise KeyFileError(f"{path} already exists (use --force to replace it)")
    for path in (priv_path, pub_path):
        if path.is_dir():
            raise KeyFileError(f"{path} is a directory")
    if private_key is None:
        private_key, _ = generate_keypair()
    priv_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        priv_file, pub_file = AtomicFile(priv_path, mode=0o600), AtomicFile(pub_path)
    except OSError as exc:
        raise KeyFileError(f"cannot write key files {priv_path}: {exc.strerror}") from exc
    try:
        priv_file.path.write_bytes(priv_pem)
        pub_file.path.write_bytes(pub_pem)
        priv_file.commit()
        pub_file.commit()
    except BaseException as exc:
        priv_file.abort()
        pub_file.abort()
        if isinstance(exc, OSError):
            raise KeyFileError(f"cannot write key files {priv_path}: {exc.strerror}") from exc
        raise
    return priv_path, pub_path


def _read(path: Path, what: str) -> bytes:
    try:
        return read_input(path, f"{what} file", MAX_KEY_BYTES)
    except OSError as exc:
        raise KeyFileError(str(exc)) from None


def _kind(key: object) -> str:
    """'RSA', 'EC', 'DSA', 'X25519', ... from a cryptography key object."""
    name = type(key).__name__.lstrip("_")
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    return name or type(key).__name__


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """An unencrypted PEM Ed25519 private key; one-line :class:`KeyFileError` otherwise."""
    path = Path(path)
    data = _read(path, "private key")
    if b"PUBLIC KEY-----" in data:
        raise KeyFileError(
            f"{path} holds a public key; a private key is expected (the file without .pub)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{path} is encrypted; use an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 private key, found {_kind(key)}")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """A PEM (SubjectPublicKeyInfo) Ed25519 public key; one-line :class:`KeyFileError`
    otherwise (a private key file is refused: pass the ``.pub`` file)."""
    path = Path(path)
    data = _read(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise KeyFileError(f"{path} holds a private key; pass the public key ({path}.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: expected an Ed25519 public key, found {_kind(key)}")
    return key
