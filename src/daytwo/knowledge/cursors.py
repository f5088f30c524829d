"""Search cursors: opaque tokens for the next page of the same search.

A cursor holds the offset of the next page, the generation that served the first page,
and a fingerprint (SHA-256) of everything that defines the search: collection,
principal, groups, query, mode, filter, fusion, grouping and keyword options. Only a
search with the same fingerprint accepts it, so a cursor from another query,
collection, caller or tenant (the tenant is among a REST caller's groups) is refused;
and since the principal is the caller's own, a forged cursor can at most page through
what the caller may see anyway. Pages are cut from one deterministic ranking (ties by
chunk key) of the generation named in the cursor: a cursor outliving a cutover or
rollback is refused, so pages never mix two indexes. Writes between pages can move
hits across the page boundary (as with Elasticsearch ``from``/``size`` without a
point in time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from daytwo.exceptions import ConflictError, InputError

__all__ = ["Cursor", "cursor_generation", "decode_cursor", "encode_cursor", "fingerprint"]

_VERSION = 1


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts."""

    fingerprint: str
    generation: str
    offset: int


def fingerprint(parts: dict[str, Any]) -> str:
    """A short hash of the search's defining parts (JSON-serialisable)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def encode_cursor(cursor: Cursor) -> str:
    """The opaque text form."""
    raw = json.dumps(
        [_VERSION, cursor.fingerprint, cursor.generation, cursor.offset], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, expected: str, generations: set[str] | dict[str, int]) -> Cursor:
    """The cursor ``text`` if it belongs to the search with fingerprint ``expected`` and
    names a generation the collection still serves, else a clear error."""
    try:
        padded = text + "=" * (-len(text) % 4)
        version, fp, gen, offset = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if version != _VERSION or not isinstance(offset, int) or offset < 0:
            raise ValueError(text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InputError(
            "the cursor is not one this server issued",
            hint="pass next_cursor from the previous page unchanged, or search without a cursor",
        ) from exc
    if fp != expected:
        raise InputError(
            "the cursor belongs to another search (query, options, collection or caller differ)",
            hint="page with the same request as the first page, or search without a cursor",
        )
    if gen not in generations:
        raise ConflictError(
            "the collection's index changed since the first page (cutover or rollback)",
            hint="search again without a cursor",
        )
    return Cursor(str(fp), str(gen), int(offset))


def cursor_generation(text: str) -> str | None:
    """The generation a cursor names (None if it is not a cursor; checked later)."""
    try:
        padded = text + "=" * (-len(text) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return str(data[2]) if isinstance(data, list) and len(data) == 4 else None
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
