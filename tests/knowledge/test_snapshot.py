"""kb snapshot / restore: one checksummed file, restored into an empty store answers alike."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.exceptions import ConflictError, InputError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.embedders import HashingEmbedder
from daytwo.knowledge.snapshot import restore_collection, snapshot_collection
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbCollection, KbDocument

QUERIES = ["harbour crane schedule", "ticket office hours", "salary review staff"]
WHO = [("bob", ["customers"]), ("alice", ["staff"]), ("stranger", [])]


def fill(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(12):
        (folder / f"pier{i}.txt").write_text(f"Harbour crane schedule {i} for pier {i % 3}.")
    kb.ingest_path(folder, "port", source_name="piers")
    kb.upsert_document("port", "office", "Ticket office hours: 9 to 5.", metadata={"lang": "en"})
    kb.upsert_document(
        "port", "salary", "Salary review for harbour staff.", acl=["group:staff"], private=True
    )
    kb.set_fusion("port", method="convex", alpha=0.6)


def answers(kb: KnowledgeBase, collection: str) -> list[list[tuple[str, str, float]]]:
    out = []
    for query in QUERIES:
        for principal, groups in WHO:
            for mode in ("bm25", "dense", "hybrid"):
                hits = kb.search(collection, query, principal, groups, mode=mode, k=8)
                out.append([(h.doc_id, h.chunk_id, round(h.score, 6)) for h in hits])
    return out


def test_restore_into_an_empty_store_answers_alike(
    kb: KnowledgeBase, tmp_path: Path, sqlite_url: str
) -> None:
    fill(kb, tmp_path)
    before = answers(kb, "port")
    assert any(before)
    file = tmp_path / "port.snap"
    report = snapshot_collection(kb, "port", file)
    assert report["rows"]["document"] == 14
    # Into a fresh store (SQLite, whatever the source was), under its own name.
    store = Store(sqlite_url.replace("daytwo.db", "restored.db"))
    store.upgrade()
    other = KnowledgeBase(store, tmp_path / "restored-data", embedder=HashingEmbedder())
    try:
        restored = restore_collection(other, file)
        assert restored["rows"] == report["rows"]
        assert answers(other, "port") == before
        assert other.sources("port")
        assert [s["source"] for s in other.sources("port")] == [
            s["source"] for s in kb.sources("port")
        ]
        salary = other.get_document("port", "salary")
        assert salary is not None
        assert (salary.acl, salary.private) == (["group:staff"], True)
        assert other.fusion_config("port").to_dict() == kb.fusion_config("port").to_dict()
        # Into the same store under another name: new generation ids, same answers.
        restore_collection(kb, file, "port2")
        assert answers(kb, "port2") == before
        with pytest.raises(ConflictError, match="already exists"):
            restore_collection(kb, file, "port2")
    finally:
        other.close()
        store.dispose()


def rows(kb: KnowledgeBase) -> tuple[int, int]:
    with kb.store.session() as s:
        return (
            s.scalar(sa.select(sa.func.count()).select_from(KbCollection)) or 0,
            s.scalar(sa.select(sa.func.count()).select_from(KbDocument)) or 0,
        )


def test_a_corrupt_or_foreign_file_is_refused_and_nothing_written(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    fill(kb, tmp_path)
    file = tmp_path / "port.snap"
    snapshot_collection(kb, "port", file)
    lines = gzip.decompress(file.read_bytes()).splitlines(keepends=True)
    before = rows(kb)

    def refused(name: str, data: bytes, match: str) -> None:
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(InputError, match=match):
            restore_collection(kb, bad, "copy")
        assert rows(kb) == before  # nothing written, not even the documents before the fault

    altered = b"".join(lines).replace(b"Ticket office hours", b"Ticket office HOURS")
    refused("altered.snap", gzip.compress(altered), "checksum")
    refused("truncated.snap", gzip.compress(b"".join(lines[:-3])), "truncated or altered")
    refused("cut.snap", file.read_bytes()[: len(file.read_bytes()) // 2], "damaged")
    refused("foreign.snap", b"PK\x03\x04 a zip file", "not a daytwo knowledge snapshot")
    refused("json.snap", gzip.compress(b'{"hello": 1}\n'), "not a daytwo knowledge snapshot")
    newer = json.loads(lines[0])
    newer["version"] = 99
    refused(
        "newer.snap",
        gzip.compress(json.dumps(newer).encode() + b"\n" + b"".join(lines[1:])),
        "version 99",
    )
    with pytest.raises(InputError, match="does not exist"):
        restore_collection(kb, tmp_path / "missing.snap")
