"""The index of a run's free text (inputs, outputs, error) that the trace explorer searches.

Search is a case-insensitive substring match, as the scan it replaced was (users paste a
fragment of an error or an id, not words): trigrams on both backends.

- SQLite: an external-content FTS5 table with the ``trigram`` tokenizer over
  ``runtime_runs`` (keyed by the run's rowid), kept in step by triggers, so every writer
  of a run's inputs, outputs or error updates it in the same transaction.
- PostgreSQL: a GIN ``pg_trgm`` index on the same text expression the query filters with
  (:func:`run_text`), used by ``ILIKE``.

A trigram index cannot answer a fragment under three characters: those are scanned
(stopped at the page size). ``VACUUM`` may renumber the rowids of ``runtime_runs`` (it has
no INTEGER PRIMARY KEY), so whoever vacuums an SQLite store calls :func:`rebuild` after it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "MIN_INDEXED",
    "PG_EXPRESSION",
    "PG_EXTENSION",
    "PG_EXTENSION_SCHEMA",
    "PG_INDEX",
    "SQLITE_DDL",
    "SQLITE_TABLE",
    "match_phrase",
    "pg_index_ddl",
    "rebuild",
]

MIN_INDEXED = 3
"""Characters below which a fragment has no trigram and is scanned instead."""

SQLITE_TABLE = "runtime_runs_text"
_COLS = "inputs, outputs, error"
SQLITE_DDL = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SQLITE_TABLE} USING fts5({_COLS}, "
    "content='runtime_runs', content_rowid='rowid', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_ai AFTER INSERT ON runtime_runs BEGIN "
    f"INSERT INTO {SQLITE_TABLE}(rowid, {_COLS}) "
    "VALUES (new.rowid, new.inputs, new.outputs, new.error); END",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_ad AFTER DELETE ON runtime_runs BEGIN "
    f"INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}, rowid, {_COLS}) "
    "VALUES ('delete', old.rowid, old.inputs, old.outputs, old.error); END",
    # Status and step counters change many times per run: only text changes reindex.
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TABLE}_au "
    f"AFTER UPDATE OF {_COLS} ON runtime_runs BEGIN "
    f"INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}, rowid, {_COLS}) "
    "VALUES ('delete', old.rowid, old.inputs, old.outputs, old.error); "
    f"INSERT INTO {SQLITE_TABLE}(rowid, {_COLS}) "
    "VALUES (new.rowid, new.inputs, new.outputs, new.error); END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_ai",
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_ad",
    f"DROP TRIGGER IF EXISTS {SQLITE_TABLE}_au",
    f"DROP TABLE IF EXISTS {SQLITE_TABLE}",
]
SQLITE_REBUILD = f"INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}) VALUES ('rebuild')"

# Must equal, token for token, what run_text() renders on PostgreSQL, or the planner
# cannot use the index (the constants are literals there, not bound parameters).
PG_EXPRESSION = (
    "COALESCE(CAST(inputs AS TEXT), '') || ' ' || COALESCE(CAST(outputs AS TEXT), '') "
    "|| ' ' || COALESCE(error, '')"
)
PG_INDEX = "ix_runtime_runs_text_trgm"
PG_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
# An extension is one per database, in whichever schema was first on the search path
# when it was created (or where the DBA put it): the operator class is qualified with
# that schema, which need not be on this store's search path.
PG_EXTENSION_SCHEMA = (
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'pg_trgm'"
)


def pg_index_ddl(extension_schema: str) -> str:
    """The trigram index, its operator class taken from ``extension_schema``."""
    quoted = '"' + extension_schema.replace('"', '""') + '"'
    return (
        f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON runtime_runs "
        f"USING gin (({PG_EXPRESSION}) {quoted}.gin_trgm_ops)"
    )


PG_DROP = [f"DROP INDEX IF EXISTS {PG_INDEX}"]


def match_phrase(fragment: str) -> str:
    """An FTS5 query matching ``fragment`` literally (one quoted phrase: ``*``, ``NEAR``,
    ``AND``, parentheses and quotes in it are text, not syntax)."""
    return '"' + fragment.replace('"', '""') + '"'


def rebuild(conn: Any) -> None:
    """Re-read every run into the SQLite index (after a VACUUM renumbered rowids).

    ``conn`` is a DB-API cursor or connection with ``execute``; a no-op when the store
    has no index (not migrated this far).
    """
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_TABLE,)
    ).fetchone()
    if found is not None:
        conn.execute(SQLITE_REBUILD)


def sqlite_rowids(fragment: str) -> sa.Select[Any]:
    """The rowids of runs whose text holds ``fragment`` (SQLite, ``len >= MIN_INDEXED``)."""
    table = sa.table(SQLITE_TABLE, sa.column("rowid"))
    return sa.select(table.c.rowid).where(
        sa.literal_column(SQLITE_TABLE).op("MATCH")(match_phrase(fragment))
    )
