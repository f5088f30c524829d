"""Keyword index: SQLite FTS5 or PostgreSQL full-text search (tsvector + GIN), scored BM25.

Each generation has a text analyzer (:mod:`daytwo.store.analyzers`: ``english`` by
default, ``simple``, or a Snowball language), applied by the database when a chunk is
written (triggers) and here when a query is stemmed.

The index lives next to ``kb_chunks`` in the same database and the same transaction: on
SQLite an external-content FTS5 table for English chunks and one holding its own
analyzed copy for the other analyzers', kept in sync by triggers (and ``fts5vocab``
tables over them that read postings with term frequencies); on PostgreSQL a stored
generated tsvector column (with the row's text search configuration) and its GIN index.
:func:`ensure_fts` creates them idempotently (they are not Alembic models: Alembic cannot
compare virtual tables, and the tsvector column exists only on PostgreSQL). The index
finds the postings; the scores are BM25 with statistics of what the principal may read
(:mod:`daytwo.knowledge.bm25`), the same formula on both backends.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from daytwo.knowledge.bm25 import Bm25Params, Permitted, Postings, rank
from daytwo.store.analyzers import DEFAULT_ANALYZER, analyze_text
from daytwo.store.engine import WRITE_OPTION
from daytwo.store.tables.knowledge import KbChunk, KbGeneration

__all__ = [
    "FTS_INDEX",
    "MAX_QUERY_TERMS",
    "TERMS_TABLE",
    "analyzer_of",
    "ensure_fts",
    "keyword_search",
    "query_terms",
    "stem_words",
    "terms_table",
]

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

# English chunks (the default) go to the external-content porter table; every other
# analyzer's to kb_chunks_fts_x, a table holding its own copy of the text as the analyzer
# made it (daytwo_analyze: Snowball stems; ``simple``: the text as it is), tokenized
# without stemming. The triggers pick the table from the chunk's generation; a delete
# finds it by the row's presence in kb_chunks_fts_x (an external-content table must never
# be told to delete a row it does not hold).
_SQLITE_X = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_chunks_fts_x USING fts5("
    "title, text, tokenize='unicode61 remove_diacritics 2')"
)
_SQLITE_ADD = (
    "INSERT INTO kb_chunks_fts_x(rowid, title, text) "
    "SELECT new.id, daytwo_analyze(a, new.title), daytwo_analyze(a, new.text) FROM "
    "(SELECT analyzer AS a FROM kb_generations WHERE id = new.generation) WHERE a != 'english'; "
    "INSERT INTO kb_chunks_fts(rowid, title, text) SELECT new.id, new.title, new.text "
    "WHERE NOT EXISTS (SELECT 1 FROM kb_chunks_fts_x WHERE rowid = new.id); "
)
_SQLITE_DROP = (
    "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, title, text) "
    "SELECT 'delete', old.id, old.title, old.text "
    "WHERE NOT EXISTS (SELECT 1 FROM kb_chunks_fts_x WHERE rowid = old.id); "
    "DELETE FROM kb_chunks_fts_x WHERE rowid = old.id; "
)
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER kb_chunks_fts_ai AFTER INSERT ON kb_chunks BEGIN {_SQLITE_ADD}END",
    f"CREATE TRIGGER kb_chunks_fts_ad AFTER DELETE ON kb_chunks BEGIN {_SQLITE_DROP}END",
    "CREATE TRIGGER kb_chunks_fts_au AFTER UPDATE ON kb_chunks BEGIN "
    f"{_SQLITE_DROP}{_SQLITE_ADD}END",
]
_SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_chunks_fts USING fts5("
    "title, text, content='kb_chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    _SQLITE_X,
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts_terms_x USING fts5vocab(kb_chunks_fts_x, instance)",
]
# fts5vocab "instance" rows (term, doc, col, offset): the postings with their frequencies.
_SQLITE_TERMS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts_terms USING fts5vocab(kb_chunks_fts, instance)"
)
# A per-connection scratch index with the same tokenizer, to stem query words exactly as
# the index stemmed the documents (its vocabulary is the stemmed query).
_SQLITE_QUERY_TABLE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_query USING fts5("
    "x, tokenize='porter unicode61 remove_diacritics 2')"
)
_SQLITE_QUERY_VOCAB = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_query_terms USING fts5vocab(temp, kb_query, row)"
)
_SQLITE_QUERY_TABLE_X = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_query_x USING fts5("
    "x, tokenize='unicode61 remove_diacritics 2')"
)
_SQLITE_QUERY_VOCAB_X = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_query_terms_x "
    "USING fts5vocab(temp, kb_query_x, row)"
)
# PostgreSQL: a stored generated tsvector column (computed once per write, never per
# query) with a GIN index; the expression index of earlier versions is dropped. Its text
# search configuration is the row's fts_config, which a BEFORE trigger sets from the
# chunk's generation (generated columns are computed after BEFORE triggers).
_PG_CONFIG = (
    "ALTER TABLE kb_chunks ADD COLUMN fts_config regconfig NOT NULL DEFAULT 'english'::regconfig"
)
_PG_COLUMN = (
    "ALTER TABLE kb_chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS "
    "(to_tsvector(fts_config, coalesce(title, '') || ' ' || text)) STORED"
)
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION kb_chunks_fts_config() RETURNS trigger "
    "LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ BEGIN "
    "NEW.fts_config := coalesce((SELECT CAST(analyzer AS regconfig) FROM kb_generations "
    "WHERE id = NEW.generation), 'english'::regconfig); RETURN NEW; END $$"
)
_PG_TRIGGER = (
    "CREATE TRIGGER kb_chunks_fts_config BEFORE INSERT OR UPDATE OF generation ON kb_chunks "
    "FOR EACH ROW EXECUTE FUNCTION kb_chunks_fts_config()"
)
FTS_INDEX = "ix_kb_chunks_fts_column"
# A GIN index takes single writes into a pending list that every search scans linearly
# until VACUUM (or a bulk ingest, :func:`daytwo.knowledge.ingest.refresh_statistics`)
# merges it; 4 MB by default, i.e. tens of ms per search. A 256 kB limit keeps that list
# short between merges at the price of a merge every few hundred single upserts.
_PG_DDL = [
    f"CREATE INDEX IF NOT EXISTS {FTS_INDEX} ON kb_chunks USING gin (fts) "
    "WITH (gin_pending_list_limit = 256)",
    "DROP INDEX IF EXISTS ix_kb_chunks_fts",
]
# The postings (PostgreSQL): one row per (chunk, lexeme) of the tsvector, with the term
# frequency and the chunk's length, keyed by (generation, lexeme) so that a query
# lexeme's postings are one index-only range scan. Scoring from the tsvectors instead
# fetched and cut every matching chunk's tsvector (~10 us a row: 100 ms for the 10,000
# chunks holding a common word at 200k chunks); SQLite reads its postings the same way
# (fts5vocab). Kept by statement triggers (transition tables: one INSERT ... SELECT per
# statement, not per row) from the stored tsvector, so a chunk's rows go when it goes
# (erase leaves none) and change when its text or generation does.
TERMS_TABLE = "kb_chunk_terms"
_PG_TERMS_DDL = [
    f"CREATE TABLE {TERMS_TABLE} (generation varchar(64) NOT NULL, lexeme text NOT NULL, "
    "chunk_id bigint NOT NULL, tf real NOT NULL, len real NOT NULL, "
    f"CONSTRAINT pk_{TERMS_TABLE} PRIMARY KEY (generation, lexeme, chunk_id) INCLUDE (tf, len))",
    f"CREATE INDEX ix_{TERMS_TABLE}_chunk ON {TERMS_TABLE} (chunk_id)",
    "CREATE OR REPLACE FUNCTION kb_chunk_terms_sync() RETURNS trigger "
    "LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ BEGIN "
    "IF TG_OP IN ('DELETE', 'UPDATE') THEN "
    f"DELETE FROM {TERMS_TABLE} WHERE chunk_id IN (SELECT id FROM old_rows); END IF; "
    "IF TG_OP IN ('INSERT', 'UPDATE') THEN "
    f"INSERT INTO {TERMS_TABLE} (generation, lexeme, chunk_id, tf, len) "
    "SELECT n.generation, u.lexeme, n.id, greatest(coalesce(cardinality(u.positions), 0), 1), "
    "coalesce(n.token_count, 0) FROM new_rows AS n CROSS JOIN LATERAL unnest(n.fts) AS u; "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER kb_chunk_terms_ai AFTER INSERT ON kb_chunks REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_terms_sync()",
    "CREATE TRIGGER kb_chunk_terms_ad AFTER DELETE ON kb_chunks REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_terms_sync()",
    "CREATE TRIGGER kb_chunk_terms_au AFTER UPDATE ON kb_chunks REFERENCING OLD TABLE AS "
    "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_terms_sync()",
    # a store made by an earlier version: its chunks' postings, once
    f"INSERT INTO {TERMS_TABLE} (generation, lexeme, chunk_id, tf, len) "
    "SELECT c.generation, u.lexeme, c.id, greatest(coalesce(cardinality(u.positions), 0), 1), "
    "coalesce(c.token_count, 0) FROM kb_chunks AS c CROSS JOIN LATERAL unnest(c.fts) AS u",
]
_PG_LIMIT_SET = (
    "SELECT 1 FROM pg_class WHERE oid = to_regclass(%(index)s) "
    "AND 'gin_pending_list_limit=256' = ANY(reloptions)"
)
_PG_TERMS_EXIST = "SELECT 1 FROM pg_class WHERE oid = to_regclass(%(t)s)"
_PG_SET_LIMIT = f"ALTER INDEX {FTS_INDEX} SET (gin_pending_list_limit = 256)"


def ensure_fts(engine: Engine) -> None:
    """Create the keyword index for ``kb_chunks`` if it does not exist yet."""
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "sqlite":
            existed = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'kb_chunks_fts'"
            ).first()
            for ddl in [*_SQLITE_DDL, _SQLITE_TERMS]:
                conn.exec_driver_sql(ddl)
            if existed is None:
                conn.exec_driver_sql("INSERT INTO kb_chunks_fts(kb_chunks_fts) VALUES ('rebuild')")
            trigger = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'kb_chunks_fts_ai'"
            ).scalar()
            if trigger is None or "kb_chunks_fts_x" not in str(trigger):  # none, or English-only
                for name in ("ai", "ad", "au"):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS kb_chunks_fts_{name}")
                for ddl in _SQLITE_TRIGGERS:
                    conn.exec_driver_sql(ddl)
        else:
            columns = set(
                conn.exec_driver_sql(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'kb_chunks'"
                ).scalars()
            )
            # checked first: ALTER TABLE locks the table even when a no-op
            if "fts_config" not in columns:  # a new store, or an English-only index: rebuilt
                if "fts" in columns:
                    conn.exec_driver_sql("ALTER TABLE kb_chunks DROP COLUMN fts")
                conn.exec_driver_sql(_PG_CONFIG)
                conn.exec_driver_sql(_PG_COLUMN)
            has_trigger = conn.exec_driver_sql(
                "SELECT 1 FROM pg_trigger WHERE tgname = 'kb_chunks_fts_config' "
                "AND tgrelid = to_regclass('kb_chunks')"
            ).first()
            if has_trigger is None:
                conn.exec_driver_sql(_PG_FUNCTION)
                conn.exec_driver_sql(_PG_TRIGGER)
            for ddl in _PG_DDL:
                conn.exec_driver_sql(ddl)
            if conn.exec_driver_sql(_PG_TERMS_EXIST, {"t": TERMS_TABLE}).first() is None:
                for ddl in _PG_TERMS_DDL:
                    conn.exec_driver_sql(ddl)
            if conn.exec_driver_sql(_PG_LIMIT_SET, {"index": FTS_INDEX}).first() is None:
                conn.exec_driver_sql(_PG_SET_LIMIT)  # an index made by an earlier version


def query_terms(query: str, analyzer: str = DEFAULT_ANALYZER) -> list[str]:
    """Distinct lower-cased words of the query (at most 64), without English stop words
    for the ``english`` analyzer."""
    stopwords = _STOPWORDS if analyzer == "english" else frozenset()
    seen: dict[str, None] = {}
    for match in _TERM.finditer(query.lower()):
        term = match.group(0)
        if term in stopwords or term in seen:
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
    query: str,
    k: int,
    permitted: Permitted,
    params: Bm25Params | None = None,
    *,
    visible: sa.ColumnElement[bool] | None = None,
) -> list[tuple[int, float]]:
    """Top-``k`` (chunk pk, BM25 score; higher is better) of the ``permitted`` chunks.

    The index supplies the postings of the query's terms (stemmed as the index stems
    them), scored with statistics of the permitted set only, so nothing the principal
    may not read moves its scores. On SQLite :func:`daytwo.knowledge.bm25.rank` scores
    them; on PostgreSQL one statement does (:func:`_pg_ranked`): only the top ``k``
    leave the server. There ``visible`` is the SQL condition on ``KbChunk`` that
    selects the permitted chunks (:func:`daytwo.knowledge.acl.permitted_clause`); it
    may be None only when ``permitted.complete``.
    """
    connection = session.connection()
    analyzer = analyzer_of(connection, generation)
    terms = query_terms(query, analyzer)
    if not terms or permitted.keys.size == 0 or k <= 0:
        return []
    if connection.dialect.name == "sqlite":
        return rank(_sqlite_postings(connection, terms, analyzer), permitted, k, params)
    if visible is None and not permitted.complete:
        raise ValueError("a keyword search of part of a generation needs its SQL condition")
    return _pg_ranked(connection, generation, terms, k, permitted, params, visible, analyzer)


_ANALYZERS: dict[str, str] = {}


def analyzer_of(connection: Connection, generation: str) -> str:
    """The analyzer ``generation`` is indexed with (cached: a generation never changes
    it; a collection changes analyzer by moving to a new generation)."""
    found = _ANALYZERS.get(generation)
    if found is None:
        found = connection.execute(
            sa.select(KbGeneration.analyzer).where(KbGeneration.id == generation)
        ).scalar()
        if found is None:
            return DEFAULT_ANALYZER
        with _STEMS_LOCK:
            if len(_ANALYZERS) > 10_000:
                _ANALYZERS.clear()
            _ANALYZERS[generation] = found
    return found


def terms_table(analyzer: str) -> str:
    """The fts5vocab instance table over the SQLite keyword index holding ``analyzer``'s
    chunks."""
    return "kb_fts_terms" if analyzer == "english" else "kb_fts_terms_x"


_STEMS: dict[tuple[str, str], tuple[str, ...]] = {}
_STEMS_LOCK = threading.Lock()


def _sqlite_stems(cursor: Any, terms: Sequence[str], analyzer: str) -> list[str]:
    """The index terms the analyzer's FTS5 index makes of ``terms`` (porter stems for
    ``english``; else the Snowball stems or words through ``unicode61``), cached."""
    out: dict[str, None] = {}
    english = analyzer == "english"
    table, vocab = ("kb_query", "kb_query_terms") if english else ("kb_query_x", "kb_query_terms_x")
    for term in terms:
        cached = _STEMS.get((analyzer, term))
        if cached is None:
            cursor.execute(_SQLITE_QUERY_TABLE if english else _SQLITE_QUERY_TABLE_X)
            cursor.execute(_SQLITE_QUERY_VOCAB if english else _SQLITE_QUERY_VOCAB_X)
            cursor.execute(f"DELETE FROM temp.{table}")
            cursor.execute(
                f"INSERT INTO temp.{table}(x) VALUES (?)", (analyze_text(analyzer, term),)
            )
            cached = tuple(r[0] for r in cursor.execute(f"SELECT term FROM temp.{vocab}"))
            cursor.execute(f"DELETE FROM temp.{table}")
            with _STEMS_LOCK:
                if len(_STEMS) > 50_000:
                    _STEMS.clear()
                _STEMS[(analyzer, term)] = cached
        for stem in cached:
            out.setdefault(stem, None)
    return list(out)


def _sqlite_postings(connection: Connection, terms: Sequence[str], analyzer: str) -> list[Postings]:
    cursor = connection.connection.cursor()
    try:
        out = []
        for stem in _sqlite_stems(cursor, terms, analyzer):
            rows = cursor.execute(
                f"SELECT doc, count(*) FROM {terms_table(analyzer)} WHERE term = ? GROUP BY doc",
                (stem,),
            ).fetchall()
            out.append(_postings(stem, rows))
        return out
    finally:
        cursor.close()


_PG_STEMS: dict[tuple[str, str], tuple[str, ...]] = {}


def _pg_stems(connection: Connection, terms: Sequence[str], analyzer: str) -> list[str]:
    """The lexemes the analyzer's PostgreSQL configuration makes of ``terms``, cached per
    term like :func:`_sqlite_stems` (a query of known words costs no round trip)."""
    missing = [t for t in terms if (analyzer, t) not in _PG_STEMS]
    if missing:
        rows = connection.exec_driver_sql(
            "SELECT t, ARRAY(SELECT lexeme FROM unnest(to_tsvector("
            "CAST(%(cfg)s AS regconfig), t))) FROM unnest(CAST(%(terms)s AS text[])) AS t",
            {"terms": missing, "cfg": analyzer},
        ).all()
        with _STEMS_LOCK:
            if len(_PG_STEMS) > 50_000:
                _PG_STEMS.clear()
            for term, lexemes in rows:
                _PG_STEMS[(analyzer, str(term))] = tuple(lexemes or ())
    out: dict[str, None] = {}
    for term in terms:
        for lexeme in _PG_STEMS.get((analyzer, term), ()):
            out.setdefault(lexeme, None)
    return list(out)


def _pg_ranked(
    connection: Connection,
    generation: str,
    terms: Sequence[str],
    k: int,
    permitted: Permitted,
    params: Bm25Params | None,
    visible: sa.ColumnElement[bool] | None,
    analyzer: str,
) -> list[tuple[int, float]]:
    """BM25 top-``k`` in one statement: the postings of the query's lexemes
    (``kb_chunk_terms``) of the permitted chunks, ``n(t)`` counted over them and the
    scores summed per chunk; ``N`` and the average length are the
    permitted set's, passed in. The formula of :func:`daytwo.knowledge.bm25.rank`,
    without shipping every posting to Python."""
    lexemes = _pg_stems(connection, terms, analyzer)
    if not lexemes:
        return []
    params = params or Bm25Params()
    binds = {
        "gen": generation,
        "lex": lexemes,
        "n": float(permitted.keys.size),
        "avg": max(permitted.average_length, 1e-6),
        "k1": params.k1,
        "b": params.b,
        "k": k,
    }
    where = ""
    if visible is not None:
        # Compiled as the WHERE of a query of kb_chunks, so that its EXISTS subqueries
        # correlate with the chunk (alone they would not); %(name)s binds of its own.
        compiled = (
            sa.select(sa.literal_column("1"))
            .select_from(KbChunk.__table__)
            .where(visible)
            .compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        )
        clash = set(compiled.params) & set(binds)
        if clash:
            raise ValueError(f"bind names {sorted(clash)} clash in the keyword statement")
        where = " AND (" + str(compiled).partition("\nWHERE ")[2] + ")"
        binds.update(compiled.params)
    # The statement runs with _PG_SETTINGS (see there), restored after it; the settings,
    # the statement and the restore go out in one pipeline (one round trip).
    raw: Any = connection.connection.driver_connection
    with raw.pipeline(), raw.cursor() as guard, raw.cursor() as cursor:
        guard.execute(_PG_SAVE)
        for name, value in _PG_SETTINGS:
            guard.execute(f"SET LOCAL {name} = {value}")
        cursor.execute(_PG_RANKED.format(join=_PG_JOIN if where else "", where=where), binds)
        guard.execute(_PG_RESTORE)
        rows = cursor.fetchall()
    return [(int(pk), float(score)) for pk, score in rows]


# Settings for the keyword statement only (SET LOCAL, put back to what they were after it):
# - enable_seqscan off: with stale statistics (a table that grew since its last ANALYZE)
#   the planner may scan the postings table (or kb_chunks for the ACL join) whole instead
#   of reading the query lexemes' ranges of the index.
# - jit off: a plan over many postings (common lexemes, large stores) is priced past
#   jit_above_cost and PostgreSQL would compile it with LLVM on every search: ~100 ms
#   measured on 5,000 chunks with jit_above_cost = 0, for a statement that runs in a few
#   ms (nothing in it is a long per-row expression JIT would speed up).
_PG_SETTINGS = (("enable_seqscan", "off"), ("jit", "off"))
_PG_SAVE = (
    "SELECT set_config('daytwo.keyword_saved', "
    + " || ',' || ".join(f"current_setting('{name}')" for name, _ in _PG_SETTINGS)
    + ", true)"
)
_PG_RESTORE = (
    "SELECT "
    + ", ".join(
        f"set_config('{name}', split_part(s, ',', {i}), true)"
        for i, (name, _) in enumerate(_PG_SETTINGS, start=1)
    )
    + " FROM current_setting('daytwo.keyword_saved') AS s"
)
# A query lexeme's postings are a range of kb_chunk_terms' primary key, read index-only
# (the chunk's tf and length are in the index); the chunks table is joined only to test
# the ACL/filter condition. %(name)s binds (psycopg); {where} is empty for a generation
# whose chunks are all permitted, else the condition on kb_chunks compiled by SQLAlchemy.
_PG_RANKED = (
    "WITH m AS MATERIALIZED (SELECT t.chunk_id AS id, CAST(t.len AS double precision) AS len, "
    "t.lexeme, CAST(t.tf AS double precision) AS tf FROM kb_chunk_terms AS t{join} "
    "WHERE t.generation = %(gen)s AND t.lexeme = ANY(CAST(%(lex)s AS text[])){where}), "
    "df AS (SELECT lexeme, ln(1.0 + (%(n)s - count(*) + 0.5) / (count(*) + 0.5)) AS idf "
    "FROM m GROUP BY lexeme) "
    "SELECT m.id, sum(df.idf * m.tf * (%(k1)s + 1.0) / "
    "(m.tf + %(k1)s * (1.0 - %(b)s + %(b)s * m.len / %(avg)s))) AS score "
    "FROM m JOIN df ON df.lexeme = m.lexeme GROUP BY m.id "
    "ORDER BY score DESC, m.id LIMIT %(k)s"
)
_PG_JOIN = " JOIN kb_chunks ON kb_chunks.id = t.chunk_id"


def _postings(term: str, rows: Sequence[Sequence[Any]]) -> Postings:
    keys = np.fromiter((int(r[0]) for r in rows), dtype=np.uint64, count=len(rows))
    tf = np.fromiter((float(r[1]) for r in rows), dtype=np.float32, count=len(rows))
    return Postings(term, keys, tf)


def stem_words(
    connection: Connection, words: Sequence[str], analyzer: str = DEFAULT_ANALYZER
) -> dict[str, tuple[str, ...]]:
    """Each word's index terms as this backend's index of ``analyzer`` makes them (for
    ``english`` porter stems on SQLite, the ``english`` configuration's lexemes on
    PostgreSQL; none for a PostgreSQL stop word), cached per word."""
    words = list(dict.fromkeys(w.lower() for w in words))
    if connection.dialect.name == "sqlite":
        cursor = connection.connection.cursor()
        try:
            return {w: tuple(_sqlite_stems(cursor, [w], analyzer)) for w in words}
        finally:
            cursor.close()
    _pg_stems(connection, words, analyzer)
    return {w: _PG_STEMS.get((analyzer, w), ()) for w in words}
