"""Bulk NDJSON writes: streamed lines, one result each, bad lines never take good ones down."""

from __future__ import annotations

import json

from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.bulk import MAX_LINE_BYTES, BulkWriter, split_lines


def ndjson(*items: object) -> bytes:
    return b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)


def run(kb: KnowledgeBase, body: bytes, chunk: int = 7) -> tuple[list[dict], dict]:
    """Feed ``body`` in small chunks, as a network stream arrives."""
    writer = BulkWriter(kb, "bulk")
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    results = writer.feed(split_lines(pieces)) + writer.flush()
    return [r.to_dict() for r in results], writer.summary()


def ids(kb: KnowledgeBase) -> list[str]:
    hits = kb.search("bulk", "harbour", "bob", ["staff"], mode="bm25", k=50)
    return sorted({h.doc_id for h in hits})


def test_bad_lines_are_reported_and_good_lines_written(kb: KnowledgeBase) -> None:
    body = ndjson(
        {"doc_id": "a", "text": "harbour crane a"},
        b"{not json",
        {"doc_id": "b", "text": "harbour crane b", "acl": ["group:staff"], "private": True},
        {"doc_id": "c", "text": "harbour with a NUL \u0000 inside"},
        {"doc_id": "d", "text": "harbour d", "colour": "red"},
        {"op": "merge", "doc_id": "e"},
        {"doc_id": "", "text": "harbour"},
        {"doc_id": "f", "text": "harbour f", "acl": ["nobody:x"]},
        {"doc_id": "g", "text": "harbour g", "metadata": {"lang": "en"}},
        {"op": "delete", "doc_id": "never-there"},
    )
    results, summary = run(kb, body)
    by_line = {r["line"]: r for r in results}
    assert sorted(by_line) == list(range(1, 11))  # one result per line, none lost
    assert [by_line[n]["status"] for n in (1, 3, 9)] == ["stored"] * 3
    assert by_line[10]["status"] == "not_found"
    for n, word in [(2, "not JSON"), (4, "NUL"), (5, "colour"), (6, "merge"), (7, "doc_id")]:
        assert by_line[n]["status"] == "error", by_line[n]
        assert word in by_line[n]["error"], by_line[n]
    assert by_line[8]["status"] == "error"
    assert "ACL entry" in by_line[8]["error"]
    assert summary == {"lines": 10, "stored": 3, "erased": 0, "not_found": 1, "error": 6}
    assert ids(kb) == ["a", "b", "g"]


def test_items_apply_in_order_and_deletes_report_what_they_erased(kb: KnowledgeBase) -> None:
    body = ndjson(
        {"doc_id": "a", "text": "harbour first"},
        {"doc_id": "a", "text": "harbour second"},
        {"doc_id": "b", "text": "harbour b"},
        {"op": "delete", "doc_id": "b"},
        {"doc_id": "c", "text": "harbour c"},
    )
    results, _summary = run(kb, body, chunk=3)
    assert [r["status"] for r in sorted(results, key=lambda r: r["line"])] == [
        "stored",
        "stored",
        "stored",
        "erased",
        "stored",
    ]
    assert ids(kb) == ["a", "c"]
    doc = kb.get_document("bulk", "a")
    assert doc is not None
    assert doc.text == "harbour second"


def test_an_over_long_line_is_one_error_and_the_stream_goes_on(kb: KnowledgeBase) -> None:
    huge = json.dumps({"doc_id": "big", "text": "x" * (MAX_LINE_BYTES + 10)}).encode()
    body = ndjson({"doc_id": "a", "text": "harbour a"}, huge, {"doc_id": "z", "text": "harbour"})
    results, summary = run(kb, body, chunk=65536)
    assert summary["stored"] == 2
    assert summary["error"] == 1
    bad = next(r for r in results if r["status"] == "error")
    assert bad["line"] == 2
    assert "longer than" in bad["error"]


def test_a_batch_the_database_refuses_is_written_item_by_item(sqlite_kb: KnowledgeBase) -> None:
    """An item the database itself refuses (here a trigger; past every check) fails alone,
    with the driver's words, and its batch neighbours are stored."""
    kb = sqlite_kb
    kb.upsert_document("bulk", "seed", "harbour seed")
    with kb.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_b BEFORE INSERT ON kb_documents WHEN NEW.doc_id = 'b' "
            "BEGIN SELECT RAISE(ABORT, 'document b refused'); END"
        )
    results, summary = run(
        kb,
        ndjson(
            {"doc_id": "a", "text": "harbour a"},
            {"doc_id": "b", "text": "harbour b"},
            {"doc_id": "c", "text": "harbour c"},
        ),
    )
    assert [(r["doc_id"], r["status"]) for r in results] == [
        ("a", "stored"),
        ("b", "error"),
        ("c", "stored"),
    ]
    assert "document b refused" in results[1]["error"]
    assert summary["stored"] == 2
    assert summary["error"] == 1
    assert ids(kb) == ["a", "c", "seed"]


_REFUSE_CHUNK = {
    "sqlite": [
        "CREATE TRIGGER refuse_chunk_b BEFORE INSERT ON kb_chunks WHEN NEW.doc_id = 'b' "
        "BEGIN SELECT RAISE(ABORT, 'chunk of b refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_chunk_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.doc_id = 'b' THEN RAISE EXCEPTION 'chunk of b refused'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_chunk_b BEFORE INSERT ON kb_chunks "
        "FOR EACH ROW EXECUTE FUNCTION refuse_chunk_b()",
    ],
}


def test_a_batch_whose_chunks_are_refused_writes_nothing_of_the_refused_item(
    kb: KnowledgeBase,
) -> None:
    """The chunks go in by COPY on PostgreSQL: a chunk the database refuses still fails
    its batch's transaction as a whole (nothing of it stays) and then its item alone."""
    kb.upsert_document("bulk", "seed", "harbour seed")
    with kb.store.engine.begin() as conn:
        for ddl in _REFUSE_CHUNK[conn.dialect.name]:
            conn.exec_driver_sql(ddl)
    results, summary = run(
        kb,
        ndjson(
            {"doc_id": "a", "text": "harbour a"},
            {"doc_id": "b", "text": "harbour b", "metadata": {"lang": "en"}},
            {"doc_id": "c", "text": "harbour c"},
        ),
    )
    assert [(r["doc_id"], r["status"]) for r in results] == [
        ("a", "stored"),
        ("b", "error"),
        ("c", "stored"),
    ]
    assert "chunk of b refused" in results[1]["error"]
    assert summary["stored"] == 2
    assert ids(kb) == ["a", "c", "seed"]
    with kb.store.engine.connect() as conn:
        for table in ("kb_documents", "kb_acl", "kb_doc_meta", "kb_chunks"):
            left = conn.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE doc_id = 'b'")
            assert left.scalar() == 0, table
