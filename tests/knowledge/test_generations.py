"""Shadow migrations: dual writes, resumable backfill, shadow reads, canary, cutover, rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.exceptions import ConfigError, ConflictError, InputError, NotFoundError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.generations import (
    backfill,
    cutover,
    parse_chunking,
    prune,
    rollback,
    start_migration,
)
from daytwo.knowledge.shadow_reads import generations_status, golden_ndcg
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbChunk, KbCollection, KbGeneration
from daytwo.store.tables.knowledge_maintenance import KbMigration, KbShadowRead
from daytwo.testing import ScriptedModelServer
from daytwo.testing.scripted_model import hashing_embedding

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def doc_text(i: int) -> str:
    """A document with one unique word (``uniq<i>``) and some shared vocabulary."""
    words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(30))
    return f"Document number {i} talks about uniq{i} and {words}"


@pytest.fixture
def kb(store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase(store, tmp_path / "data", embedder="hashing-384")
    yield base
    base.close()


@pytest.fixture
def remote() -> Iterator[ScriptedModelServer]:
    """An OpenAI-compatible embeddings endpoint with 128-dimensional vectors."""
    with ScriptedModelServer(embed=lambda text: hashing_embedding(text, 128)) as server:
        yield server


def fill(kb: KnowledgeBase, n: int, collection: str = "docs") -> None:
    for i in range(n):
        kb.upsert_document(collection, f"d{i:04d}", doc_text(i), title=f"Doc {i}")


def shadow_chunks(store: Store, generation: str) -> list[tuple[str, str]]:
    with store.session() as s:
        return [
            (r[0], r[1])
            for r in s.execute(
                sa.select(KbChunk.doc_id, KbChunk.chunk_id).where(KbChunk.generation == generation)
            )
        ]


def findable(kb: KnowledgeBase, i: int, mode: str = "hybrid") -> bool:
    # k=10: the test embedders hash tokens, so dense scores tie and can crowd a top-5.
    hits = kb.search("docs", f"uniq{i}", "alice", groups=["staff"], mode=mode, k=10)
    return any(h.doc_id == f"d{i:04d}" for h in hits)


def test_migrate_to_an_openai_compatible_endpoint_cutover_rollback_prune(
    kb: KnowledgeBase, remote: ScriptedModelServer, store: Store
) -> None:
    fill(kb, 30)
    old = kb.active_generation("docs")
    name = f"openai:embed-small@{remote.base_url}"
    status = start_migration(kb, "docs", name, chunking=parse_chunking("size=64,overlap=8", {}))
    assert status.state == "backfilling"
    assert status.total == 30
    # Dual write: a document written now reaches both generations.
    kb.upsert_document("docs", "d0100", doc_text(100), title="Doc 100")
    kb.delete_document("docs", "d0001")
    status = backfill(kb, status.id, batch_size=7)
    assert status.state == "ready"
    new = status.target_generation
    with store.session() as s:
        gen = s.get(KbGeneration, new)
        assert gen is not None
        assert gen.dim == 128
        assert gen.embedder == name
        assert gen.chunking == {"size": 64, "overlap": 8}
    docs_in_new = {d for d, _ in shadow_chunks(store, new)}
    docs_in_old = {d for d, _ in shadow_chunks(store, old.id)}
    assert docs_in_new == docs_in_old == {f"d{i:04d}" for i in range(30) if i != 1} | {"d0100"}
    chunk_ids = [c for _, c in shadow_chunks(store, new)]
    assert len(chunk_ids) == len(set(chunk_ids))
    assert remote.requests, "the shadow was embedded by the remote endpoint"

    cutover(kb, "docs", actor="ops")
    assert kb.active_generation("docs").id == new
    assert findable(kb, 100, "dense")
    assert findable(kb, 5, "dense")
    # Written after the cutover: reaches the old generation too, so rollback loses nothing.
    kb.upsert_document("docs", "d0200", doc_text(200))
    rollback(kb, "docs", actor="ops")
    assert kb.active_generation("docs").id == old.id
    assert findable(kb, 200, "dense")
    assert findable(kb, 100, "dense")
    cutover(kb, "docs")
    pruned = prune(kb, "docs")
    assert [p["pruned_generation"] for p in pruned] == [old.id]
    assert shadow_chunks(store, old.id) == []
    assert not kb.index_dir(old).exists()
    with store.session() as s:
        assert s.get(KbGeneration, old.id).state == "pruned"  # type: ignore[union-attr]
        assert s.get(KbMigration, status.id).state == "done"  # type: ignore[union-attr]
    assert findable(kb, 200, "dense")
    assert findable(kb, 7)
    report = generations_status(kb, "docs")["collections"][0]
    assert report["migration"]["state"] == "done"
    assert [g["state"] for g in report["generations"]] == ["pruned", "active"]


def test_shadow_reads_canary_and_golden_ndcg(
    kb: KnowledgeBase, store: Store, tmp_path: Path
) -> None:
    fill(kb, 20)
    status = start_migration(
        kb,
        "docs",
        "hashing-384",
        chunking=parse_chunking("size=16,overlap=4", {}),
        shadow_read_rate=1.0,
        canary_percent=0.0,
    )
    # While backfilling, nothing is sampled or routed to the incomplete shadow.
    assert findable(kb, 3)
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(KbShadowRead)) == 0
    backfill(kb, status.id)
    # Rerunning the same migrate adjusts the rates of the running migration.
    same = start_migration(
        kb,
        "docs",
        "hashing-384",
        chunking=parse_chunking("size=16,overlap=4", {}),
        canary_percent=50.0,
    )
    assert (same.id, same.state, same.canary_percent) == (status.id, "ready", 50.0)
    for i in range(40):
        assert findable(kb, i % 20)
    with store.session() as s:
        rows = s.execute(sa.select(KbShadowRead.served, KbShadowRead.overlap)).all()
    assert len(rows) == 40
    assert {r[0] for r in rows} == {"active", "canary"}
    assert all(0.0 <= r[1] <= 1.0 for r in rows)
    reads = generations_status(kb, "docs")["collections"][0]["migration"]["shadow_reads"]
    assert reads["samples"] == 40
    assert 0.0 < reads["overlap_at_10"] <= 1.0
    assert reads["active_p50_ms"] > 0
    assert reads["shadow_p50_ms"] > 0
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "\n".join(json.dumps({"query": f"uniq{i}", "relevant": [f"d{i:04d}"]}) for i in range(10))
    )
    ndcg = golden_ndcg(kb, "docs", golden, "alice", ["staff"])
    assert set(ndcg) == {status.source_generation, status.target_generation}
    assert all(v > 0.9 for v in ndcg.values())
    golden.write_text('{"query": "x"}\n')
    with pytest.raises(InputError, match=r"golden\.jsonl:1"):
        golden_ndcg(kb, "docs", golden, "alice")


def count_rows(store: Store) -> tuple[int, int, int]:
    with store.session() as s:
        return (
            s.scalar(sa.select(sa.func.count()).select_from(KbGeneration)) or 0,
            s.scalar(sa.select(sa.func.count()).select_from(KbMigration)) or 0,
            s.scalar(sa.select(sa.func.count()).select_from(KbChunk)) or 0,
        )


def test_bad_input_changes_nothing(kb: KnowledgeBase, store: Store) -> None:
    fill(kb, 5)
    before = count_rows(store)
    with pytest.raises(ConfigError, match="unknown embedder 'nope-9'"):
        start_migration(kb, "docs", "nope-9")
    with pytest.raises(NotFoundError, match="does not exist"):
        start_migration(kb, "missing", "hashing-384")
    with pytest.raises(InputError, match="already uses"):
        start_migration(kb, "docs", "hashing-384")
    with pytest.raises(InputError, match="size=N or overlap=N"):
        parse_chunking("width=3", {})
    with pytest.raises(InputError, match="canary"):
        start_migration(kb, "docs", "hashing-384", canary_percent=120)
    with pytest.raises(NotFoundError, match="no migration in progress"):
        cutover(kb, "docs")
    assert count_rows(store) == before

    status = start_migration(
        kb, "docs", "hashing-384", chunking=parse_chunking("size=32,overlap=4", {})
    )
    after_start = count_rows(store)
    with pytest.raises(ConflictError, match="already has a migration in progress"):
        start_migration(kb, "docs", "hashing-384", chunking=parse_chunking("size=48,overlap=4", {}))
    with pytest.raises(ConflictError, match="cutover needs it complete"):
        cutover(kb, "docs")
    with pytest.raises(ConflictError, match="not cut over"):
        rollback(kb, "docs")
    assert count_rows(store) == after_start
    assert kb.active_generation("docs").id == status.source_generation
    # Rerunning the same migrate resumes the same migration.
    again = start_migration(
        kb, "docs", "hashing-384", chunking=parse_chunking("size=32,overlap=4", {})
    )
    assert again.id == status.id


def test_interrupted_backfill_resumes_without_duplicates(kb: KnowledgeBase, store: Store) -> None:
    fill(kb, 25)
    status = start_migration(
        kb, "docs", "hashing-384", chunking=parse_chunking("size=24,overlap=4", {})
    )
    partial = backfill(kb, status.id, batch_size=4, max_batches=3)
    assert partial.state == "backfilling"
    assert partial.done == 12
    assert partial.checkpoint == "d0011"
    kb.upsert_document("docs", "d0003", doc_text(3) + " revised")  # behind the checkpoint
    kb.upsert_document("docs", "d0020", doc_text(20) + " revised")  # ahead of it
    kb.delete_document("docs", "d0021")
    done = backfill(kb, status.id, batch_size=4)
    assert done.state == "ready"
    chunks = shadow_chunks(store, status.target_generation)
    assert len(chunks) == len({c for _, c in chunks})
    assert {d for d, _ in chunks} == {f"d{i:04d}" for i in range(25) if i != 21}
    # Same chunks as a fresh build of the same settings would give.
    fresh = KnowledgeBase(store, kb.data_dir / "fresh", embedder="hashing-384")
    with store.session() as s:
        texts = {
            r[0]: r[1]
            for r in s.execute(
                sa.select(KbChunk.chunk_id, KbChunk.text).where(
                    KbChunk.generation == status.target_generation
                )
            )
        }
    assert "revised" in texts["d0003#0"] + texts.get("d0003#1", "") + texts.get("d0003#2", "")
    fresh.close()


@pytest.mark.slow
def test_kill_9_during_backfill_then_rerun(
    sqlite_store: Store, tmp_path: Path, remote: ScriptedModelServer
) -> None:
    kb = KnowledgeBase(sqlite_store, tmp_path / "data", embedder="hashing-384")
    fill(kb, 80)
    kb.close()
    name = f"openai:slow@{remote.base_url}"
    remote._embed = lambda text: (time.sleep(0.01), hashing_embedding(text, 128))[1]  # slow
    script = textwrap.dedent(
        f"""
        from daytwo.store import Store
        from daytwo.knowledge import KnowledgeBase
        from daytwo.knowledge.generations import backfill, start_migration, parse_chunking
        store = Store({sqlite_store.url!r})
        kb = KnowledgeBase(store, {str(tmp_path / "data")!r}, embedder="hashing-384")
        chunking = parse_chunking("size=24,overlap=4", {{}})
        status = start_migration(kb, "docs", {name!r}, chunking=chunking)
        print(status.id, flush=True)
        backfill(kb, status.id, batch_size=2)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    mig_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        with sqlite_store.session() as s:
            done = s.scalar(sa.select(KbMigration.done).where(KbMigration.id == mig_id)) or 0
        if done >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with sqlite_store.session() as s:
        mig = s.get(KbMigration, mig_id)
        assert mig is not None
        assert mig.state == "backfilling"
        assert 10 <= mig.done < 80, "killed mid-backfill"
    kb = KnowledgeBase(sqlite_store, tmp_path / "data", embedder="hashing-384")
    again = start_migration(kb, "docs", name, chunking=parse_chunking("size=24,overlap=4", {}))
    assert again.id == mig_id
    finished = backfill(kb, mig_id, batch_size=8)
    assert finished.state == "ready"
    chunks = shadow_chunks(sqlite_store, finished.target_generation)
    assert len(chunks) == len({c for _, c in chunks})
    assert {d for d, _ in chunks} == {f"d{i:04d}" for i in range(80)}
    cutover(kb, "docs")
    assert findable(kb, 77)
    kb.close()


@pytest.mark.slow
def test_continuous_queries_during_full_migration(
    kb: KnowledgeBase, store: Store, remote: ScriptedModelServer
) -> None:
    """Queries run in a thread through migrate, backfill, cutover, rollback, cutover, prune."""
    fill(kb, 60)
    written = set(range(60))
    failures: list[str] = []
    queries = 0
    stop = threading.Event()

    def query_loop() -> None:
        nonlocal queries
        i = 0
        while not stop.is_set():
            target = sorted(written)[i % len(written)]
            i += 7
            try:
                if not findable(kb, target):
                    failures.append(f"d{target:04d} not found")
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            queries += 1

    thread = threading.Thread(target=query_loop)
    thread.start()
    try:
        name = f"openai:embed-small@{remote.base_url}"
        status = start_migration(kb, "docs", name, shadow_read_rate=0.3, canary_percent=20)
        for j in range(60, 70):  # dual writes while the backfill runs
            kb.upsert_document("docs", f"d{j:04d}", doc_text(j))
            written.add(j)
            backfill(kb, status.id, batch_size=5, max_batches=1)
        backfill(kb, status.id, batch_size=5)
        time.sleep(0.3)
        cutover(kb, "docs")
        kb.upsert_document("docs", "d0070", doc_text(70))
        written.add(70)
        time.sleep(0.3)
        rollback(kb, "docs")
        time.sleep(0.3)
        cutover(kb, "docs")
        time.sleep(0.3)
        prune(kb, "docs")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert queries > 20
    assert failures == []
    assert all(findable(kb, i) for i in sorted(written))
    with store.session() as s:
        row = s.get(KbCollection, "docs")
        assert row is not None
        assert row.active_generation == status.target_generation


def test_backfill_progress_counts_the_documents_that_exist(kb: KnowledgeBase) -> None:
    """Issue 20: progress showed 305/305 for 300 documents. Documents deleted after their
    batch was counted, and ones written during the backfill, end as what the collection
    holds."""
    for i in range(20):
        kb.upsert_document("prog", f"d{i:04d}", doc_text(i))
    status = start_migration(
        kb, "prog", "hashing-384", chunking=parse_chunking("size=64,overlap=8", {})
    )
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:  # after the first batch: delete counted documents, add new ones
            for i in range(3):
                kb.delete_document("prog", f"d{i:04d}")
            kb.upsert_document("prog", "d0000x", doc_text(99))

    status = backfill(kb, status.id, batch_size=6, progress=progress)
    assert status.state == "ready"
    assert (status.done, status.total) == (18, 18)  # 20 - 3 + 1
    assert all(done <= total for done, total in seen)
    assert seen[-1] == (18, 18)
