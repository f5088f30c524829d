"""Ed25519 keys that sign audit checkpoints (``cryptography``)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from daytwo.exceptions import ConfigError, InputError

__all__ = [
    "KEY_FILE",
    "AuditSigner",
    "key_id",
    "load_public_key",
    "public_key_pem",
    "verify_signature",
]

KEY_FILE = "audit_ed25519.key"
"""Name of the signing key file in the data directory."""


def key_id(public_key_b64: str) -> str:
    """Short fingerprint of a raw public key (base64): first 16 hex of its SHA-256."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:16]


def verify_signature(public_key_b64: str, signature_b64: str, message: bytes) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``message``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public_key(path: Path) -> str:
    """The raw Ed25519 public key (base64) in the PEM file ``path`` (InputError otherwise)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read the public key {path}: {exc}",
            hint="pass the Ed25519 PEM public key printed by `daytwo audit key`",
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} is not an Ed25519 public key", hint="pass the audit key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_pem(public_key_b64: str) -> str:
    """PEM text of a raw Ed25519 public key (base64)."""
    return (
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class AuditSigner:
    """Holds the private key; only the signer can create checkpoints."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key_b64 = base64.b64encode(raw).decode()
        self.key_id = key_id(self.public_key_b64)

    @classmethod
    def generate(cls) -> AuditSigner:
        """A new random key (not stored anywhere)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> AuditSigner:
        """Load the PEM key at ``path``, creating it (mode 0600) when absent."""
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"cannot read the audit signing key {path}: {exc}",
                    hint="restore the key file from backup (checkpoints signed with it "
                    "cannot be re-signed), or move it away to start a new key",
                ) from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise ConfigError(
                    f"the audit signing key {path} is not an Ed25519 key",
                    hint="replace it with an Ed25519 PEM key or move it away",
                )
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        except FileExistsError:
            return cls.load_or_create(path)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the audit signing key {path}: {exc}",
                hint="set DAYTWO_DATA_DIR to a writable directory",
            ) from exc
        return cls(key)

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self._key.sign(message)).decode()

    def public_key_pem(self) -> str:
        """The public key as PEM (for evidence bundles)."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
