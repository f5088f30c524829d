"""A keyword analyzer per collection: chosen at creation, applied when indexing and when
querying on both backends, kept by snapshot/restore, changed by a re-index."""

from __future__ import annotations

from pathlib import Path

import pytest

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.knowledge.generations import backfill, cutover, start_migration
from daytwo.knowledge.keyword_query import KeywordOptions
from daytwo.knowledge.search import SearchRequest
from daytwo.knowledge.snapshot import restore_collection, snapshot_collection
from daytwo.store import Store
from daytwo.store.analyzers import ANALYZERS

DOCS = {
    "haeuser": ("Wohnen", "Die Häuser am Fluss sind alt."),
    "katzen": ("Tiere", "Katzen schlafen viel."),
    "runs": ("Sport", "She runs every morning."),
}


def fill(kb: KnowledgeBase, collection: str, analyzer: str | None) -> None:
    kb.ensure_collection(collection, analyzer=analyzer)
    for doc_id, (title, text) in DOCS.items():
        kb.upsert_document(collection, doc_id, text, title=title)


def found(kb: KnowledgeBase, collection: str, query: str, **kw: object) -> set[str]:
    keyword = KeywordOptions(**kw) if kw else None  # type: ignore[arg-type]
    request = SearchRequest(collection, query, "ann", ("staff",), "bm25", 10, keyword=keyword)
    return {h.doc_id for h in kb.run(request)}


def test_german_stems_german_and_english_does_not(kb: KnowledgeBase) -> None:
    fill(kb, "de", "german")
    fill(kb, "en", None)
    fill(kb, "plain", "simple")
    assert found(kb, "de", "Haus") == {"haeuser"}
    assert found(kb, "de", "Katze") == {"katzen"}
    assert found(kb, "en", "Haus") == set()  # porter/english does not stem German
    assert found(kb, "en", "run") == {"runs"}  # but does stem English
    assert found(kb, "plain", "Haus") == set()  # simple: no stemming at all
    assert found(kb, "plain", "run") == set()
    assert found(kb, "plain", "häuser") == {"haeuser"}
    # the boolean path, phrases and highlights read the same analyzer
    assert found(kb, "de", '"alten Häuser" OR Haus', syntax="boolean") == {"haeuser"}
    assert found(kb, "de", "Haus AND Fluss", syntax="boolean") == {"haeuser"}
    request = SearchRequest(
        "de", "Haus", "ann", ("staff",), "bm25", 10, keyword=KeywordOptions(highlight=True)
    )
    (hit,) = kb.run(request)
    assert [(m.field, hit.text[m.start : m.end]) for m in hit.highlights] == [("text", "Häuser")]


def test_analyzer_is_chosen_once(kb: KnowledgeBase) -> None:
    fill(kb, "de", "german")
    assert kb.active_generation("de").analyzer == "german"
    assert kb.ensure_collection("de", analyzer="GERMAN").analyzer == "german"
    with pytest.raises(InputError, match="analyzes text as 'german'") as info:
        kb.ensure_collection("de", analyzer="french")
    assert "--analyzer french" in (info.value.hint or "")


def test_unknown_analyzer_is_one_clear_error_and_writes_nothing(kb: KnowledgeBase) -> None:
    with pytest.raises(InputError, match="unknown analyzer 'klingon'") as info:
        kb.ensure_collection("k", analyzer="klingon")
    assert "german" in (info.value.hint or "")
    assert "simple" in (info.value.hint or "")
    with pytest.raises(NotFoundError, match="does not exist"):
        kb.active_generation("k")


def test_reindex_changes_the_analyzer(kb: KnowledgeBase) -> None:
    fill(kb, "c", None)
    assert found(kb, "c", "Haus") == set()
    status = start_migration(kb, "c", kb.active_generation("c").embedder, analyzer="german")
    backfill(kb, status.id)
    cutover(kb, "c")
    assert kb.active_generation("c").analyzer == "german"
    assert found(kb, "c", "Haus") == {"haeuser"}
    kb.delete_document("c", "haeuser")  # the trigger removes it from the right index
    assert found(kb, "c", "Haus") == set()
    with pytest.raises(InputError, match="unknown analyzer"):
        start_migration(kb, "c", kb.active_generation("c").embedder, analyzer="nope")


def test_snapshot_restore_keeps_the_analyzer(kb: KnowledgeBase, tmp_path: Path) -> None:
    fill(kb, "de", "german")
    path = tmp_path / "de.snap"
    snapshot_collection(kb, "de", path)
    other = KnowledgeBase(kb.store, tmp_path / "other", embedder=HashingEmbedder())
    try:
        restore_collection(other, path, collection="de2")
        assert other.active_generation("de2").analyzer == "german"
        assert found(other, "de2", "Haus") == {"haeuser"}
    finally:
        other.close()


def test_every_analyzer_is_a_postgres_configuration_and_a_snowball_stemmer(
    kb: KnowledgeBase,
) -> None:
    for analyzer in ANALYZERS:
        kb.ensure_collection(f"a-{analyzer}", analyzer=analyzer)
        kb.upsert_document(f"a-{analyzer}", "d", "words words words")
        assert found(kb, f"a-{analyzer}", "words") == {"d"}


def test_english_index_of_an_earlier_version_is_upgraded(store: Store, tmp_path: Path) -> None:
    """ensure_fts replaces the English-only triggers/column and keeps indexed chunks."""
    from daytwo.knowledge.fts import ensure_fts

    kb = KnowledgeBase(store, tmp_path / "d", embedder=HashingEmbedder())
    try:
        fill(kb, "en", None)
        with store.engine.begin() as conn:
            if store.engine.dialect.name == "sqlite":
                for name in ("ai", "ad", "au"):
                    conn.exec_driver_sql(f"DROP TRIGGER kb_chunks_fts_{name}")
                conn.exec_driver_sql(
                    "CREATE TRIGGER kb_chunks_fts_ai AFTER INSERT ON kb_chunks BEGIN "
                    "INSERT INTO kb_chunks_fts(rowid, title, text) "
                    "VALUES (new.id, new.title, new.text); END"
                )
            else:
                conn.exec_driver_sql("DROP TRIGGER kb_chunks_fts_config ON kb_chunks")
                conn.exec_driver_sql("ALTER TABLE kb_chunks DROP COLUMN fts")
                conn.exec_driver_sql("ALTER TABLE kb_chunks DROP COLUMN fts_config")
                conn.exec_driver_sql(
                    "ALTER TABLE kb_chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS "
                    "(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || text)) "
                    "STORED"
                )
        ensure_fts(store.engine)
        assert found(kb, "en", "run") == {"runs"}
        fill(kb, "de", "german")
        assert found(kb, "de", "Haus") == {"haeuser"}
    finally:
        kb.close()
