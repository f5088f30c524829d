"""Erase by document, metadata and subject; receipts; no trace of the text after vacuum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.erase import erase
from daytwo.knowledge.generations import backfill, parse_chunking, start_migration
from daytwo.knowledge.maintenance import vacuum
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbChunk, KbDocMeta, KbDocument, KbTombstone
from daytwo.store.tables.tracing import AuditRecordRow
from daytwo.tracing.audit import AuditLog

MARKER = "Zqxmarker7781secret"


@pytest.fixture
def kb(store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase(store, tmp_path / "data", embedder="hashing-384")
    yield base
    base.close()


def seed(kb: KnowledgeBase) -> None:
    for i in range(12):
        kb.upsert_document(
            "crm",
            f"note-{i}",
            f"Support note {i} about billing and refunds for account {i}.",
            metadata={"customer": f"c-{i % 3}", "subject": f"person-{i % 4}"},
        )


def audit_count(store: Store) -> int:
    with store.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditRecordRow)) or 0


def doc_ids(store: Store) -> set[str]:
    with store.session() as s:
        return set(s.scalars(sa.select(KbDocument.doc_id)))


def test_erase_by_document_where_and_subject(kb: KnowledgeBase, store: Store) -> None:
    seed(kb)
    receipt = erase(kb, "crm", document="note-0", actor="dpo@example.com")
    assert receipt.documents == 1
    assert sum(receipt.chunks.values()) >= 1
    assert "note-0" not in doc_ids(store)
    receipt = erase(kb, "crm", where="customer=c-1", actor="dpo")
    assert receipt.documents == 4  # note-1, 4, 7, 10
    receipt = erase(kb, "crm", subject="person-2", actor="dpo")
    assert receipt.documents == 2  # note-2 and note-6 (note-10 went with c-1)
    left = {f"note-{i}" for i in (3, 5, 8, 9, 11)}
    assert doc_ids(store) == left
    with store.session() as s:
        assert set(s.scalars(sa.select(KbChunk.doc_id).distinct())) == left
        assert set(s.scalars(sa.select(KbDocMeta.doc_id).distinct())) == left
        assert (s.scalar(sa.select(sa.func.count()).select_from(KbTombstone)) or 0) >= 7
        records = list(
            s.scalars(sa.select(AuditRecordRow).where(AuditRecordRow.kind == "kb.erase"))
        )
    assert [r.data["selector"]["kind"] for r in records] == ["document", "where", "subject"]
    assert records[0].actor == "dpo@example.com"
    assert records[1].data["documents"] == 4
    assert all("note-" not in str(r.data["doc_id_sha256"]) for r in records)
    assert AuditLog(store).verify().ok
    hits = kb.search("crm", "billing refunds account", "alice", groups=["x"], k=20)
    assert {h.doc_id for h in hits} <= left


def test_erase_bad_input_changes_nothing(kb: KnowledgeBase, store: Store) -> None:
    seed(kb)
    before = (doc_ids(store), audit_count(store))
    with pytest.raises(NotFoundError, match="document 'nope' does not exist"):
        erase(kb, "crm", document="nope")
    with pytest.raises(NotFoundError, match="customer=c-9"):
        erase(kb, "crm", where="customer=c-9")
    with pytest.raises(NotFoundError, match="subject 'ghost'"):
        erase(kb, "crm", subject="ghost")
    with pytest.raises(NotFoundError, match="collection 'other' does not exist"):
        erase(kb, "other", document="note-1")
    with pytest.raises(InputError, match="exactly one of"):
        erase(kb, "crm", document="note-1", subject="person-1")
    with pytest.raises(InputError, match="exactly one of"):
        erase(kb, "crm")
    with pytest.raises(InputError, match="not key=value"):
        erase(kb, "crm", where="customer")
    assert (doc_ids(store), audit_count(store)) == before


def scan(paths: list[Path], needle: bytes) -> list[str]:
    found = []
    for path in paths:
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path))
    return found


@pytest.mark.parametrize("shadow_analyzer", ["english", "german"])
def test_marker_gone_from_db_fts_and_index_files_after_erase_and_vacuum(
    sqlite_store: Store, tmp_path: Path, shadow_analyzer: str
) -> None:
    kb = KnowledgeBase(sqlite_store, tmp_path / "data", embedder="hashing-384")
    seed(kb)
    kb.upsert_document(
        "crm",
        "secret-doc",
        f"The customer wrote {MARKER} in the ticket about refunds.",
        title=f"Ticket {MARKER}",
        metadata={"subject": "person-x", "note": MARKER},
    )
    # A shadow generation holds the marker too (a German one: in its own FTS5 table).
    status = start_migration(
        kb,
        "crm",
        "hashing-384",
        chunking=parse_chunking("size=16,overlap=2", {}),
        analyzer=shadow_analyzer,
    )
    backfill(kb, status.id)
    assert kb.search("crm", MARKER, "alice", groups=["x"], mode="bm25")[0].doc_id == "secret-doc"
    db_file = Path(sqlite_store.engine.url.database or "")
    files = lambda: [  # noqa: E731
        db_file,
        db_file.with_name(db_file.name + "-wal"),
        *(p for p in (tmp_path / "data").rglob("*")),
    ]
    kb.save_indexes()
    assert scan(files(), MARKER.encode()), "the marker is stored before the erase"
    receipt = erase(kb, "crm", subject="person-x")
    assert receipt.documents == 1
    assert len([n for n in receipt.chunks.values() if n]) == 2  # active and shadow
    assert kb.search("crm", MARKER, "alice", groups=["x"], mode="bm25") == []
    vacuum(kb, "crm")
    kb.close()
    sqlite_store.dispose()
    stem = MARKER.lower()[:-2].encode()  # the German stem "...secr", a prefix of the word
    for needle in (MARKER.encode(), stem, MARKER.encode("utf-16-le")):
        assert scan(files(), needle) == []
    with sqlite_store.engine.connect() as conn:
        fts = conn.exec_driver_sql(
            "SELECT count(*) FROM kb_chunks_fts WHERE kb_chunks_fts MATCH ?", (MARKER.lower(),)
        ).scalar()
        audit = conn.exec_driver_sql("SELECT data FROM audit_records").fetchall()
    assert fts == 0
    assert MARKER not in str(audit)


def test_receipt_names_no_id_and_decisions_are_scrubbed(kb: KnowledgeBase, store: Store) -> None:
    """The hash-chained receipt holds salted hashes of the selector and the ids, never the
    ids; the erased ids are gone from stored decision records (and nothing else is)."""
    from daytwo.knowledge.erase import salted_sha256
    from daytwo.store.tables.tracing import DecisionRow
    from daytwo.tracing import setup_tracing

    seed(kb)
    handle = setup_tracing(store)
    try:
        hits = kb.search("crm", "billing refunds account 10", "alice", groups=["x"], k=12)
        assert {"note-10", "note-1"} <= {h.doc_id for h in hits}
        assert handle.flush()
    finally:
        handle.shutdown()
    with store.session() as s:
        before = [str(r.data) for r in s.scalars(sa.select(DecisionRow))]
    assert any("'note-10'" in d for d in before)
    receipt = erase(kb, "crm", document="note-10", actor="dpo")
    receipt_s = erase(kb, "crm", subject="person-3", actor="dpo")  # note-3, note-7, note-11
    with store.session() as s:
        records = list(
            s.scalars(sa.select(AuditRecordRow).where(AuditRecordRow.kind == "kb.erase"))
        )
        after = [(str(r.data), r.summary) for r in s.scalars(sa.select(DecisionRow))]
    for record, value, ids in (
        (records[0], "note-10", ["note-10"]),
        (records[1], "person-3", ["note-11", "note-3", "note-7"]),
    ):
        text = str(record.data) + str(record.subject)
        assert value not in text
        assert not any(i in text for i in ids)
        salt = record.data["selector"]["salt"]
        assert len(salt) == 32
        # whoever knows the id can check the receipt covers it
        assert record.data["selector"]["value_sha256"] == salted_sha256(salt, value)
        assert sorted(record.data["doc_id_sha256"]) == sorted(salted_sha256(salt, i) for i in ids)
    assert records[0].data["selector"]["salt"] != records[1].data["selector"]["salt"]
    assert "note-10" not in str(receipt.to_dict())
    assert "person-3" not in str(receipt_s.to_dict())
    assert AuditLog(store).verify().ok
    joined = " ".join(d + s for d, s in after)
    for gone in ("'note-10'", "'note-3'", "'note-7'", "'note-11'"):
        assert gone not in joined
    assert "[erased]" in joined
    assert "'note-1'" in joined  # note-1 was not erased: its mention stays (no prefix match)
