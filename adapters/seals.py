"""Seals: a recorded digest of the whole chain up to a position, signed.

`homeledger seal` records a LedgerSealed fact holding the digest of every fact up to
the head; it is published like any fact, so a copy outside the database witnesses
the history before it. `verify` recomputes each seal's digest from the stored chain.

A digest alone binds nothing for a forger who can write the database: they edit a
fact, recompute every hash after it and the seal's digest. So a seal is also signed
with an Ed25519 key the database does not hold (HOMELEDGER_SEAL_KEY), and `verify`
checks the signature with the public key alone (HOMELEDGER_SEAL_PUBLIC_KEY): a
history rewritten under a signed seal needs a new signature, which only the key's
holder can make. Each signature names its key by `key_id` (the first 16 hex digits of
the SHA-256 of the raw public key), so that keys can be rotated: every public key
still trusted is listed, and a new seal is signed by the current private key.

Keys are given as a file or as a value: PEM (PKCS#8 private, SubjectPublicKeyInfo
public, as `openssl genpkey -algorithm ed25519` writes them) or the 32 raw bytes in
base64 or hex. Several public keys: a file with several PEM blocks, or values
separated by commas or new lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from homeledger.adapters.errors import ConfigError
from homeledger.adapters.hash_chain import GENESIS_HASH

SIGNED = b"homeledger-seal-signature:v1:"  # what a signature covers: this, then the digest
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S)


def seal_digest(position: int, count: int, last_hash: str) -> str:
    """The digest a seal records: how many facts up to which position, and their chain."""
    return hashlib.sha256(f"homeledger-seal:{position}:{count}:{last_hash}".encode()).hexdigest()


def digest_of(position: int, bodies: Iterable[dict[str, Any]]) -> str:
    """The seal digest of the facts at positions 1..`position` (their stored bodies)."""
    count, last_hash = 0, GENESIS_HASH
    for body in bodies:
        count, last_hash = count + 1, str(body.get("hash"))
    return seal_digest(position, count, last_hash)


# Signing and checking.


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private: Ed25519PrivateKey, digest: str) -> dict[str, str]:
    """The fields a signed seal adds to its data: the signature (base64) and its key."""
    signature = private.sign(SIGNED + digest.encode())
    return {"signature": base64.b64encode(signature).decode(),
            "key_id": key_id(private.public_key())}  # fmt: skip


@dataclass(frozen=True)
class SealKeys:
    """The public keys a verifier trusts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    def problem(self, digest: str, signature: str, signer: str) -> str | None:
        """Why a seal's signature does not prove its digest, or None when it does."""
        public = self.keys.get(signer)
        if public is None:
            return f"signed by key {signer[:16]!r}, which is not among the trusted public keys"
        try:
            public.verify(base64.b64decode(signature, validate=True), SIGNED + digest.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return f"its signature does not verify with key {signer}: the seal was altered"
        return None


# Loading keys: a file or a value, never echoed.


def load_private_key(text: str, name: str = "HOMELEDGER_SEAL_KEY") -> Ed25519PrivateKey:
    material = _material(text, name)
    try:
        if b"-----BEGIN" in material:
            key = serialization.load_pem_private_key(material, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_raw32(material))
    except (ValueError, TypeError):
        raise ConfigError(f"{name} is neither a readable key file nor an Ed25519 private "
                          "key (PEM, or 32 bytes in base64 or hex)") from None  # fmt: skip
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{name} is not an Ed25519 private key")
    return key


def load_public_keys(text: str, name: str = "HOMELEDGER_SEAL_PUBLIC_KEY") -> SealKeys:
    material = _material(text, name).decode("ascii", "replace")
    parts = _PEM_BLOCK.findall(material) or [p for p in re.split(r"[,\s]+", material) if p]
    keys: dict[str, Ed25519PublicKey] = {}
    for part in parts:
        try:
            if part.startswith("-----BEGIN"):
                key = serialization.load_pem_public_key(part.encode())
            else:
                key = Ed25519PublicKey.from_public_bytes(_raw32(part.encode()))
        except (ValueError, TypeError):
            raise ConfigError(f"{name} is neither a readable key file nor Ed25519 public "
                              "keys (PEM, or 32 bytes in base64 or hex)") from None  # fmt: skip
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{name} holds a public key that is not Ed25519")
        keys[key_id(key)] = key
    if not keys:
        raise ConfigError(f"{name} holds no public key")
    return SealKeys(keys)


def _material(text: str, name: str) -> bytes:
    """The key's bytes: the file's content when `text` names a file, else `text`."""
    stripped = text.strip()
    if "\n" not in stripped and len(stripped) < 4096 and not stripped.startswith("-----"):
        path = Path(stripped).expanduser()
        try:
            if path.is_file():
                return path.read_bytes()
        except OSError:
            raise ConfigError(f"{name}: the key file cannot be read") from None
    return stripped.encode("utf-8", "replace")


def _raw32(material: bytes) -> bytes:
    text = material.strip()
    for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(raw) == 32:
            return raw
    raise ValueError("not 32 bytes")
