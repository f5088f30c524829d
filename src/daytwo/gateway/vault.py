"""Credential vault: secrets encrypted at rest with AES-GCM; OAuth2 client-credentials tokens.

The key comes from ``DAYTWO_SECRET_KEY`` (any string; 32-byte keys are derived
with HKDF-SHA256) or from ``<data_dir>/secret.key`` (created with mode 0600 on
first use). Secret values never appear in logs, spans or error messages.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from daytwo.exceptions import BackendError, ConfigError, InputError, NotFoundError
from daytwo.store import Store, utcnow
from daytwo.store.tables.gateway import GatewaySecret

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["CredentialVault", "OAuth2TokenCache", "vault_key"]

log = logging.getLogger("daytwo.gateway.vault")


def _derive(material: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"daytwo-vault", info=b"aes-gcm-key"
    ).derive(material)


def vault_key(settings: Settings) -> bytes:
    """The 32-byte vault key from the settings or the key file (created when absent)."""
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value()
        if len(secret) < 16:
            raise ConfigError(
                "DAYTWO_SECRET_KEY is too short", hint="use at least 16 random characters"
            )
        return _derive(secret.encode())
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(os.urandom(32)).decode())
        log.info("created a new vault key file at %s", path)
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"the vault key file {path} is unreadable or not base64",
            hint="restore it from a backup or set DAYTWO_SECRET_KEY",
        ) from exc
    if len(raw) != 32:
        raise ConfigError(
            f"the vault key file {path} does not hold 32 bytes",
            hint="restore it from a backup or set DAYTWO_SECRET_KEY",
        )
    return raw


class CredentialVault:
    """Named secrets in the database, AES-GCM encrypted, the name bound as associated data."""

    def __init__(self, store: Store, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the vault key must be 32 bytes", hint="see vault_key()")
        self.store = store
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> CredentialVault:
        """A vault keyed from the settings."""
        return cls(store, vault_key(settings))

    def put(self, name: str, value: str) -> None:
        """Store (or replace) a secret."""
        if not name or len(name) > 128:
            raise InputError(
                "a secret name must have 1 to 128 characters", hint="pick a short name"
            )
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, value.encode(), name.encode())
        with self.store.session(write=True) as s:
            row = s.get(GatewaySecret, name)
            if row is None:
                s.add(GatewaySecret(name=name, nonce=nonce, ciphertext=ciphertext))
            else:
                row.nonce, row.ciphertext, row.updated_at = nonce, ciphertext, utcnow()

    def get(self, name: str) -> str:
        """The plaintext of a secret, or NotFoundError."""
        with self.store.session() as s:
            row = s.get(GatewaySecret, name)
            if row is None:
                raise NotFoundError(
                    f"secret {name!r} is not in the vault",
                    hint=f"add it: daytwo tools secret-set {name}",
                )
            nonce, ciphertext = row.nonce, row.ciphertext
        try:
            return self._aead.decrypt(nonce, ciphertext, name.encode()).decode()
        except InvalidTag as exc:
            raise ConfigError(
                f"secret {name!r} cannot be decrypted with this vault key",
                hint="use the key it was stored with (DAYTWO_SECRET_KEY or <data_dir>/secret.key)",
            ) from exc

    def delete(self, name: str) -> None:
        """Remove a secret (NotFoundError when absent)."""
        with self.store.session(write=True) as s:
            row = s.get(GatewaySecret, name)
            if row is None:
                raise NotFoundError(f"secret {name!r} is not in the vault", hint="see secret-list")
            s.delete(row)

    def names(self) -> list[str]:
        """Names of the stored secrets (never their values)."""
        with self.store.session() as s:
            return list(s.scalars(select(GatewaySecret.name).order_by(GatewaySecret.name)))


@dataclass
class _Token:
    value: str
    expires_at: float


class OAuth2TokenCache:
    """OAuth2 client-credentials tokens, cached and refreshed before they expire."""

    def __init__(self, *, refresh_margin_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.refresh_margin_s = refresh_margin_s
        self.timeout_s = timeout_s
        # Keyed by token URL, client id, scope and a salted hash of the client secret:
        # a rotated secret gets a token of its own; the secret itself is never kept.
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._salt = os.urandom(16)
        self._lock = threading.Lock()
        self.fetches = 0

    def _key(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None
    ) -> tuple[str, str, str, str]:
        digest = hashlib.sha256(self._salt + client_secret.encode()).hexdigest()
        return (token_url, client_id, digest, scope or "")

    def invalidate(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        rejected: str,
    ) -> None:
        """Forget the cached token if it is ``rejected`` (a backend answered 401 to it).

        A token another caller already replaced stays: one refresh per rejected token.
        """
        key = self._key(token_url, client_id, client_secret, scope)
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.value == rejected:
                del self._tokens[key]

    def token(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> str:
        """A valid access token, fetched (through ``client`` when given) when missing or stale."""
        key = self._key(token_url, client_id, client_secret, scope)
        with self._lock:
            tok = self._tokens.get(key)
            now = time.monotonic()
            if tok is not None and now < tok.expires_at:
                return tok.value
            tok = self._fetch(token_url, client_id, client_secret, scope, client)
            self._tokens[key] = tok
            return tok.value

    def _fetch(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        client: httpx.Client | None = None,
    ) -> _Token:
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        self.fetches += 1
        try:
            post = client.post if client is not None else httpx.post
            resp = post(
                token_url, data=data, auth=(client_id, client_secret), timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise BackendError(
                f"the OAuth2 token endpoint {token_url} failed: {type(exc).__name__}",
                hint="check token_url and that the server is up",
            ) from exc
        if resp.status_code != 200:
            raise BackendError(
                f"the OAuth2 token endpoint {token_url} answered HTTP {resp.status_code}",
                hint="check the client id and the client secret in the vault",
            )
        try:
            body = resp.json()
            value = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"the OAuth2 token endpoint {token_url} answered without an access_token",
                hint="check token_url",
            ) from exc
        margin = min(self.refresh_margin_s, lifetime / 2)
        return _Token(value, time.monotonic() + lifetime - margin)
