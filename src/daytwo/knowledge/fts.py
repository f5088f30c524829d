"""Keyword index: SQLite FTS5 (bm25) or PostgreSQL full-text search (tsvector + GIN).

The index lives next to ``kb_chunks`` in the same database and the same transaction:
on SQLite an external-content FTS5 table kept in sync by triggers, on PostgreSQL a GIN
expression index. :func:`ensure_fts` creates them idempotently (they are not Alembic
models: Alembic cannot compare virtual tables or expression indexes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from daytwo.knowledge.acl import flatten_metadata, permitted_clause
from daytwo.store.tables.knowledge import KbChunk

__all__ = ["MAX_QUERY_TERMS", "ensure_fts", "keyword_search", "query_terms"]

MAX_QUERY_TERMS = 64

_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "about",
        "than",
        "then",
        "so",
        "not",
        "no",
    )
)
_TERM = re.compile(r"\w+", re.UNICODE)

_SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_chunks_fts USING fts5("
    "title, text, content='kb_chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS kb_chunks_fts_ai AFTER INSERT ON kb_chunks BEGIN "
    "INSERT INTO kb_chunks_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS kb_chunks_fts_ad AFTER DELETE ON kb_chunks BEGIN "
    "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, title, text) "
    "VALUES ('delete', old.id, old.title, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS kb_chunks_fts_au AFTER UPDATE ON kb_chunks BEGIN "
    "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, title, text) "
    "VALUES ('delete', old.id, old.title, old.text); "
    "INSERT INTO kb_chunks_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
]
_PG_DOC = (
    "to_tsvector('english'::regconfig, coalesce(kb_chunks.title, '') || ' ' || kb_chunks.text)"
)
_PG_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_kb_chunks_fts ON kb_chunks USING gin "
    "(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || text))"
)


def ensure_fts(engine: Engine) -> None:
    """Create the keyword index for ``kb_chunks`` if it does not exist yet."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            existed = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'kb_chunks_fts'"
            ).first()
            for ddl in _SQLITE_DDL:
                conn.exec_driver_sql(ddl)
            if existed is None:
                conn.exec_driver_sql("INSERT INTO kb_chunks_fts(kb_chunks_fts) VALUES ('rebuild')")
        else:
            conn.exec_driver_sql(_PG_DDL)


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased words of the query without stop words (at most 64)."""
    seen: dict[str, None] = {}
    for match in _TERM.finditer(query.lower()):
        term = match.group(0)
        if term in _STOPWORDS or term in seen:
            continue
        seen[term] = None
        if len(seen) >= MAX_QUERY_TERMS:
            break
    if not seen:  # a query of stop words only still searches for them
        for match in _TERM.finditer(query.lower()):
            seen.setdefault(match.group(0), None)
            if len(seen) >= MAX_QUERY_TERMS:
                break
    return list(seen)


def keyword_search(
    session: Session,
    generation: str,
    collection: str,
    query: str,
    k: int,
    entries: Sequence[str],
    filters: Mapping[str, Any] | None = None,
    allowed: npt.NDArray[np.uint64] | None = None,
) -> list[tuple[int, float]]:
    """Top-``k`` (chunk pk, score; higher is better) visible with ``entries``.

    ``allowed``: the sorted chunk pks of ``generation`` visible with ``entries`` and
    ``filters`` (the search's cached permitted set). On SQLite the ranked FTS5 matches
    are then streamed through it until ``k`` are found, instead of testing the ACL with
    a correlated ``EXISTS`` on every match (the filter still runs inside the search:
    never fewer than ``k`` results when ``k`` permitted ones match).
    """
    terms = query_terms(query)
    if not terms or not entries or k <= 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        if allowed is not None:
            return _sqlite_ranked_in(session, terms, k, allowed)
        return _sqlite_search(session, generation, collection, terms, k, entries, filters)
    permitted = permitted_clause(collection, entries, filters)
    tsquery = " | ".join(terms)
    doc: sa.ColumnElement[Any] = sa.literal_column(_PG_DOC)
    q = sa.func.to_tsquery(sa.literal_column("'english'::regconfig"), tsquery)
    rank = sa.func.ts_rank_cd(doc, q)
    stmt = (
        sa.select(KbChunk.id, rank)
        .where(doc.op("@@")(q), KbChunk.generation == generation, permitted)
        .order_by(rank.desc())
        .limit(k)
    )
    return [(int(pk), float(score)) for pk, score in session.execute(stmt)]


def _match(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', "") + '"' for t in terms)


def _sqlite_ranked_in(
    session: Session, terms: Sequence[str], k: int, allowed: npt.NDArray[np.uint64]
) -> list[tuple[int, float]]:
    """FTS5 matches best first, kept when their pk is in ``allowed``, until ``k`` are kept."""
    out: list[tuple[int, float]] = []
    if allowed.size == 0:
        return out
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(
            "SELECT rowid, bm25(kb_chunks_fts) AS s FROM kb_chunks_fts "
            "WHERE kb_chunks_fts MATCH ? ORDER BY s",
            (_match(terms),),
        )
        step = max(64, 2 * k)
        while len(out) < k:
            rows = cursor.fetchmany(step)
            if not rows:
                break
            keys = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
            pos = np.minimum(np.searchsorted(allowed, keys), allowed.size - 1)
            for (pk, score), keep in zip(rows, (allowed[pos] == keys).tolist(), strict=True):
                if keep:
                    out.append((int(pk), -float(score)))
                    if len(out) >= k:
                        break
            step *= 2
    finally:
        cursor.close()
    return out


def _sqlite_search(
    session: Session,
    generation: str,
    collection: str,
    terms: list[str],
    k: int,
    entries: Sequence[str],
    filters: Mapping[str, Any] | None,
) -> list[tuple[int, float]]:
    """FTS5 bm25 with the ACL and filters as EXISTS, in plain SQL (hot path, no ORM)."""
    params: dict[str, Any] = {
        "match": _match(terms),
        "gen": generation,
        "coll": collection,
        "k": k,
    }
    names = []
    for i, entry in enumerate(entries):
        params[f"e{i}"] = entry
        names.append(f":e{i}")
    sql = [
        "SELECT c.id, bm25(kb_chunks_fts) AS s FROM kb_chunks_fts "
        "JOIN kb_chunks c ON c.id = kb_chunks_fts.rowid "
        "WHERE kb_chunks_fts MATCH :match AND c.generation = :gen AND c.collection = :coll "
        "AND EXISTS (SELECT 1 FROM kb_acl a WHERE a.collection = :coll "
        f"AND a.doc_id = c.doc_id AND a.entry IN ({', '.join(names)}))"
    ]
    for i, (key, value) in enumerate(flatten_metadata(filters or {}).items()):
        params[f"k{i}"], params[f"v{i}"] = key, value
        sql.append(
            " AND EXISTS (SELECT 1 FROM kb_doc_meta m WHERE m.collection = :coll "
            f"AND m.doc_id = c.doc_id AND m.key = :k{i} AND m.value = :v{i})"
        )
    sql.append(" ORDER BY s LIMIT :k")
    rows = session.connection().exec_driver_sql("".join(sql), params).all()
    return [(int(pk), -float(score)) for pk, score in rows]
