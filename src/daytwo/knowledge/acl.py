"""Access control: ACL entries, the principal's entries, and the SQL that enforces them.

A document's ACL is a set of entries ``user:<name>`` and ``group:<name>``. A search as
a principal matches the entries ``user:<principal>`` and ``group:<g>`` for each of its
groups, plus ``group:everyone`` when the principal is *known*: it has groups, or some
ACL names it. A principal that is neither sees nothing.

Sources not marked private get ``group:everyone`` by default; private sources get
only the entries given (default deny). The permission test is a SQL ``EXISTS``
(:func:`permitted_clause`): it computes the set of chunks a principal may see, which
the vector search walks its ranked candidates through until it has ``k``, and which
the keyword search scores (with BM25 statistics of that set only); never a filter
applied to a finished top-k. The rows a search returns are checked against the ACL
once more in the same snapshot (:mod:`daytwo.knowledge.search`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.exceptions import InputError
from daytwo.knowledge.filters import Filter, filter_clause
from daytwo.store.tables.knowledge import KbAcl, KbChunk

__all__ = [
    "EVERYONE",
    "default_acl",
    "flatten_metadata",
    "normalise_acl",
    "permitted_clause",
    "principal_entries",
]

EVERYONE = "group:everyone"


def normalise_acl(entries: Iterable[str]) -> list[str]:
    """Validated, de-duplicated, sorted ACL entries (bare names mean ``user:<name>``)."""
    out: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if ":" not in entry:
            entry = f"user:{entry}"
        kind, _, name = entry.partition(":")
        if kind not in {"user", "group"} or not name or len(entry) > 300 or "\x00" in entry:
            raise InputError(
                f"ACL entry {raw!r} is not user:<name> or group:<name>",
                hint="for example --acl user:alice --acl group:support",
            )
        out.add(f"{kind}:{name}")
    return sorted(out)


def default_acl(acl: Sequence[str] | None, private: bool) -> list[str]:
    """The ACL a document gets: the given entries, else everyone unless private."""
    if acl:
        return normalise_acl(acl)
    return [] if private else [EVERYONE]


def principal_entries(
    session: Session, collection: str, principal: str, groups: Sequence[str]
) -> list[str]:
    """The ACL entries a search as ``principal`` with ``groups`` matches."""
    if "\x00" in principal or any("\x00" in g for g in groups):
        raise InputError(
            "a principal or group name contains a NUL character",
            hint="names are text without control characters",
        )
    if not principal and not groups:
        return []
    entries = {f"group:{g}" for g in groups if g}
    if principal:
        entries.add(f"user:{principal}")
    known = bool(groups)
    if not known and principal:
        known = (
            session.scalar(
                sa.select(KbAcl.entry)
                .where(KbAcl.collection == collection, KbAcl.entry == f"user:{principal}")
                .limit(1)
            )
            is not None
        )
    if known:
        entries.add(EVERYONE)
    return sorted(entries)


def flatten_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Scalar metadata as strings (the filterable part)."""
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            out[str(key)[:200]] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[str(key)[:200]] = str(value)[:500]
    return out


def permitted_clause(
    collection: str, entries: Sequence[str], filters: Filter | None
) -> sa.ColumnElement[bool]:
    """SQL condition on ``KbChunk``: its document is visible with ``entries`` and matches
    the typed metadata filter (:mod:`daytwo.knowledge.filters`)."""
    acl = sa.exists(
        sa.select(sa.literal(1)).where(
            KbAcl.collection == collection,
            KbAcl.doc_id == KbChunk.doc_id,
            KbAcl.entry.in_(list(entries)),
        )
    )
    conditions: list[sa.ColumnElement[bool]] = [KbChunk.collection == collection, acl]
    if filters is not None:
        conditions.append(filter_clause(filters, collection, KbChunk.__table__.c.doc_id))
    return sa.and_(*conditions)
