"""Ingest: incremental sync, crash + rerun, read-your-writes, live generations, ANN catch-up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.knowledge.embedders import Vectors
from daytwo.knowledge.ingest import BATCH_DOCS, DocWrite, commit_writes, prepare_writes
from daytwo.store import Store, new_id, utcnow
from daytwo.store.tables.knowledge import KbChunk, KbDocument, KbGeneration, KbTombstone

from .conftest import write_docs

EVERYONE = ("staff",)


def _chunks(kb: KnowledgeBase, collection: str) -> list[tuple[str, str, int]]:
    with kb.store.session() as s:
        return sorted(
            s.execute(
                sa.select(KbChunk.doc_id, KbChunk.chunk_id, KbChunk.id).where(
                    KbChunk.collection == collection
                )
            )
        )


def test_incremental_sync(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = write_docs(
        tmp_path / "docs",
        {"a.md": "# Alpha\napples and pears", "b.txt": "bananas", "c.txt": "cherries"},
    )
    first = kb.ingest_path(root, "fruit")
    assert (first.added, first.updated, first.unchanged, first.deleted) == (3, 0, 0, 0)
    before = _chunks(kb, "fruit")
    write_docs(root, {"b.txt": "blueberries now"})
    (root / "c.txt").unlink()
    write_docs(root, {"d.txt": "dates"})
    second = kb.ingest_path(root, "fruit")
    assert (second.added, second.updated, second.unchanged, second.deleted) == (1, 1, 1, 1)
    after = _chunks(kb, "fruit")
    assert [c for c in after if c[0] == "a.md"] == [c for c in before if c[0] == "a.md"]
    assert {c[0] for c in after} == {"a.md", "b.txt", "d.txt"}
    assert kb.get_document("fruit", "c.txt") is None
    hits = kb.search("fruit", "blueberries", "u", groups=EVERYONE, mode="bm25")
    assert [h.doc_id for h in hits] == ["b.txt"]
    assert kb.search("fruit", "cherries", "u", groups=EVERYONE, mode="bm25") == []
    third = kb.ingest_path(root, "fruit")
    assert (third.added, third.updated, third.deleted, third.chunks) == (0, 0, 0, 0)


def test_corrupt_file_keeps_its_previous_version(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = write_docs(tmp_path / "docs", {"a.txt": "alpha", "b.txt": "bravo"})
    kb.ingest_path(root, "c")
    (root / "b.txt").write_bytes(b"\x00\x00 now binary")
    report = kb.ingest_path(root, "c")
    assert [s.item for s in report.skipped] == ["b.txt"]
    assert report.deleted == 0
    assert kb.get_document("c", "b.txt") is not None


def test_crash_mid_ingest_then_rerun_finishes_without_duplicates(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    n = BATCH_DOCS + 50  # two write batches: the crash comes after the first
    root = write_docs(tmp_path / "docs", {f"d{i:03}.txt": f"document {i} text" for i in range(n)})
    calls = []

    def crash_after_first_batch(done: int, total: int) -> None:
        calls.append(done)
        if done > 0:
            raise KeyboardInterrupt  # the process dies after one committed batch

    with pytest.raises(KeyboardInterrupt):
        kb.ingest_path(root, "big", progress=crash_after_first_batch)
    with kb.store.session() as s:
        partial = s.scalar(sa.select(sa.func.count()).select_from(KbDocument))
    assert 0 < partial < n
    # A new process: a fresh KnowledgeBase over the same store and data directory.
    fresh = KnowledgeBase(kb.store, kb.data_dir, embedder=HashingEmbedder())
    report = fresh.ingest_path(root, "big")
    assert report.added == n - partial
    assert report.unchanged == partial
    chunks = _chunks(fresh, "big")
    assert len(chunks) == n
    assert len({c[1] for c in chunks}) == n
    hits = fresh.search("big", "document 7 text", "u", groups=EVERYONE, mode="dense", k=n)
    assert len(hits) == n


def test_read_your_writes_and_delete(kb: KnowledgeBase) -> None:
    kb.upsert_document("notes", "n1", "the launch code is tangerine", title="Launch")
    hits = kb.search("notes", "tangerine", "u", groups=EVERYONE, mode="dense", k=1)
    assert hits[0].doc_id == "n1"
    assert hits[0].title == "Launch"
    assert kb.search("notes", "tangerine", "u", groups=EVERYONE, mode="bm25")[0].doc_id == "n1"
    kb.upsert_document("notes", "n1", "the launch code is mandarin")
    assert kb.search("notes", "tangerine", "u", groups=EVERYONE, mode="bm25") == []
    assert kb.delete_document("notes", "n1") is True
    assert kb.delete_document("notes", "n1") is False
    assert kb.search("notes", "mandarin", "u", groups=EVERYONE, mode="hybrid") == []
    with kb.store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(KbTombstone)) == 2


def test_writes_reach_every_live_generation(kb: KnowledgeBase) -> None:
    kb.upsert_document("c", "a", "alpha")
    active = kb.active_generation("c")
    shadow_id = _add_shadow(kb, "c")
    kb.upsert_document("c", "b", "bravo")
    kb.delete_document("c", "a")
    with kb.store.session() as s:
        rows = s.execute(sa.select(KbChunk.generation, KbChunk.doc_id)).all()
        seqs = dict(s.execute(sa.select(KbGeneration.id, KbGeneration.seq)).all())
    assert sorted(rows) == sorted([(active.id, "b"), (shadow_id, "b")])
    assert seqs[shadow_id] == 2
    assert seqs[active.id] == 3


def test_ann_index_catches_up_and_rebuilds(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb1 = KnowledgeBase(store, data, embedder=HashingEmbedder())
    for i in range(5):
        kb1.upsert_document("c", f"d{i}", f"doc number {i} about topic{i}")
    kb1.close()  # index saved at seq 5
    gen = kb1.active_generation("c")
    kb2 = KnowledgeBase(store, data, embedder=HashingEmbedder())
    kb2.upsert_document("c", "late", "a late document about zebras")  # kb1's file is stale now
    kb2.delete_document("c", "d0")  # kb2 exits without saving its index (like a crash)
    kb3 = KnowledgeBase(store, data, embedder=HashingEmbedder())
    assert kb3.index_for(gen).seq == 7  # loaded at seq 5, caught up from the database
    index = kb3.index_for(gen)
    assert index.seq == 7
    assert len(index) == 5
    assert kb3.search("c", "zebras", "u", groups=EVERYONE, mode="dense", k=1)[0].doc_id == "late"
    index_file = kb3.index_dir(gen) / "index.usearch"
    kb3.close()
    index_file.write_bytes(b"garbage")
    kb4 = KnowledgeBase(store, data, embedder=HashingEmbedder())
    assert len(kb4.index_for(gen)) == 5  # rebuilt from the database
    assert kb4.rebuild_index("c") == 5


def test_upsert_bad_input(kb: KnowledgeBase) -> None:
    from daytwo.exceptions import InputError

    with pytest.raises(InputError, match="collection name"):
        kb.upsert_document("bad name!", "a", "x")
    with pytest.raises(InputError, match="doc_id"):
        kb.upsert_document("c", "", "x")
    with pytest.raises(InputError, match="ACL entry"):
        kb.upsert_document("c", "a", "x", acl=["role:admin"])


def _add_shadow(kb: KnowledgeBase, collection: str) -> str:
    """Start a re-index by hand: a shadow generation with its own chunking."""
    shadow_id = f"g{new_id()[:15]}"
    with kb.store.session() as s:
        s.add(
            KbGeneration(
                id=shadow_id,
                collection=collection,
                embedder="hashing-384",
                embedder_version="1",
                dim=384,
                chunking={"size": 50, "overlap": 5},
                ann_params={},
                state="shadow",
                seq=0,
                created_at=utcnow(),
            )
        )
    return shadow_id


def _docs_per_generation(kb: KnowledgeBase, collection: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with kb.store.session() as s:
        for gen, doc_id in s.execute(
            sa.select(KbChunk.generation, KbChunk.doc_id).where(KbChunk.collection == collection)
        ):
            out.setdefault(gen, set()).add(doc_id)
    return out


def test_commit_reaches_a_generation_that_went_live_after_prepare(kb: KnowledgeBase) -> None:
    kb.upsert_document("c", "a", "alpha")
    active = kb.active_generation("c")
    doc = DocWrite("b", "bravo words", "", {}, ["group:everyone"], False, "api", "h")
    prepared = prepare_writes(kb, [doc], kb.live_generations("c"))
    assert set(prepared.pieces) == {active.id}
    shadow_id = _add_shadow(kb, "c")  # a re-index starts between prepare and commit
    timings = commit_writes(kb, "c", prepared)
    assert timings.chunks == 2
    per_gen = _docs_per_generation(kb, "c")
    assert per_gen[shadow_id] == {"b"}
    assert per_gen[active.id] == {"a", "b"}


def test_commit_skips_a_generation_that_stopped_being_live(kb: KnowledgeBase) -> None:
    kb.upsert_document("c", "a", "alpha")
    shadow_id = _add_shadow(kb, "c")
    doc = DocWrite("b", "bravo", "", {}, ["group:everyone"], False, "api", "h")
    prepared = prepare_writes(kb, [doc], kb.live_generations("c"))
    assert shadow_id in prepared.pieces
    with kb.store.session() as s:  # the re-index is cancelled
        s.execute(sa.delete(KbGeneration).where(KbGeneration.id == shadow_id))
    commit_writes(kb, "c", prepared)
    assert shadow_id not in _docs_per_generation(kb, "c")
    assert kb.get_document("c", "b") is not None


def test_reindex_starting_mid_ingest_reaches_the_pipelined_batch(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    # Batch 2 is being embedded (for the active generation only) while batch 1 commits;
    # the re-index starts right after that commit, before batch 2's.
    n = BATCH_DOCS + 7
    root = write_docs(tmp_path / "docs", {f"d{i:03}.txt": f"document {i}" for i in range(n)})
    shadow: list[str] = []

    def start_reindex_after_first_batch(done: int, total: int) -> None:
        if done == BATCH_DOCS:
            shadow.append(_add_shadow(kb, "big"))

    kb.ingest_path(root, "big", progress=start_reindex_after_first_batch)
    per_gen = _docs_per_generation(kb, "big")
    active = kb.active_generation("big")
    assert len(per_gen[active.id]) == n
    second_batch = {f"d{i:03}.txt" for i in range(BATCH_DOCS, n)}
    assert per_gen[shadow[0]] == second_batch  # the first batch is the backfill's job


class _FailingEmbedder(HashingEmbedder):
    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_on_call = fail_on_call

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("embedding model crashed")
        return super().embed(texts)


def test_embedding_error_in_the_worker_propagates_after_committed_batches(
    store: Store, tmp_path: Path
) -> None:
    n = BATCH_DOCS + 7
    root = write_docs(tmp_path / "docs", {f"d{i:03}.txt": f"document {i}" for i in range(n)})
    kb = KnowledgeBase(store, tmp_path / "data", embedder=_FailingEmbedder(fail_on_call=2))
    progress: list[int] = []
    try:
        with pytest.raises(RuntimeError, match="embedding model crashed"):
            kb.ingest_path(root, "big", progress=lambda done, total: progress.append(done))
        assert progress == [0, BATCH_DOCS]
        with kb.store.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(KbDocument)) == BATCH_DOCS
    finally:
        kb.close()


def test_writes_analyze_the_tables_they_grew(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's planner gets statistics of the key columns as the writes grow the
    tables (without them it filters a batch's ids over the whole generation)."""
    from daytwo.knowledge import ingest

    monkeypatch.setattr(ingest, "STATISTICS_MIN_PAGES", 1)
    monkeypatch.setattr(ingest, "STATISTICS_CHECK_EVERY", 1)
    for i in range(12):
        kb.upsert_document("c", f"d{i}", f"harbour crane number {i}")
    if kb.store.is_sqlite:
        assert ingest.analyze_grown_tables(kb) == []
        return
    with kb.store.engine.connect() as conn:
        rows = {
            name: (pages, tuples)
            for name, pages, tuples in conn.exec_driver_sql(
                "SELECT relname, relpages, reltuples FROM pg_class WHERE oid IN "
                "(to_regclass('kb_chunks'), to_regclass('kb_documents'), to_regclass('kb_acl'))"
            )
        }
    assert sorted(rows) == ["kb_acl", "kb_chunks", "kb_documents"]
    assert all(pages > 0 and tuples > 0 for pages, tuples in rows.values())  # -1: never
    assert ingest.analyze_grown_tables(kb) == []  # nothing grew since
