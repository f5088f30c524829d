"""Ticket exports (Zendesk, Jira, GitHub issues): detection, threads, internal comments' ACL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.cli.main import run
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.erase import erase
from daytwo.knowledge.sources import FileSource, Skipped, SourceDocument
from daytwo.store.tables.knowledge import KbChunk, KbDocument

FIXTURES = Path(__file__).parent / "fixtures" / "tickets"


def _read(path: Path, fmt: str | None = None) -> tuple[dict[str, SourceDocument], list[Skipped]]:
    docs: dict[str, SourceDocument] = {}
    skipped: list[Skipped] = []
    for item in FileSource(path, ticket_format=fmt).read():
        if isinstance(item, Skipped):
            skipped.append(item)
        else:
            docs[item.doc_id] = item
    return docs, skipped


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES, tmp_path / "tickets"))


def test_the_three_shapes_are_detected_and_read_as_threads() -> None:
    docs, skipped = _read(FIXTURES)
    assert skipped == []
    assert sorted(docs) == [
        "github:kestrel-cloud/kestrel-cli/42",
        "github:kestrel-cloud/kestrel-cli/43",
        "jira:SUP-12",
        "jira:SUP-12/internal",
        "jira:SUP-13",
        "jira:SUP-20",
        "jira:SUP-21",
        "zendesk:35436",
        "zendesk:35436/internal",
        "zendesk:35437",
        "zendesk:35501",
        "zendesk:35502",
    ]
    zd = docs["zendesk:35436"]
    assert zd.title == "Cannot rotate API key after SSO migration"
    assert zd.acl is None  # the ingest's ACL
    # The description once (its first comment repeats it), then the public replies in order.
    assert zd.text.count("greyed out") == 1
    assert zd.text.index("re-invited through") < zd.text.index("all three admins")
    assert "KEST-4411" not in zd.text
    meta = zd.metadata
    assert (meta["status"], meta["priority"], meta["assignee"]) == (
        "open",
        "high",
        "sam@kestrel.example",
    )
    assert meta["labels"] == "sso, api-keys, enterprise"
    assert meta["data_subject"] == meta["requester"] == "carol@customer.example"
    internal = docs["zendesk:35436/internal"]
    assert "KEST-4411" in internal.text
    assert internal.acl == ("group:agents",)
    assert internal.metadata["visibility"] == "internal"
    # Jira: jsdPublic false and a visibility restriction are both internal; ADF is read.
    jira_internal = docs["jira:SUP-12/internal"].text
    assert "CHG-881" in jira_internal
    assert "customer credit" in jira_internal.lower()
    assert "CHG-881" not in docs["jira:SUP-12"].text
    assert "José" in docs["jira:SUP-13"].text
    assert docs["jira:SUP-12"].metadata["status"] == "In Progress"
    # Jira CSV: repeated Labels and Comment columns.
    sup20 = docs["jira:SUP-20"]
    assert sup20.metadata["labels"] == "dashboard, performance"
    assert sup20.text.index("scans every run") < sup20.text.index("materialised daily rollup")
    gh = docs["github:kestrel-cloud/kestrel-cli/42"]
    assert gh.metadata["priority"] == "high"
    assert gh.metadata["assignee"] == "maintainer-mia"
    assert "not quoted" in gh.text
    assert docs["zendesk:35501"].metadata["priority"] == "urgent"


def test_a_customer_never_sees_internal_comments(kb: KnowledgeBase) -> None:
    report = kb.ingest_path(FIXTURES, "tickets")
    assert (report.added, report.skipped) == (12, [])
    as_customer = kb.search(
        "tickets", "KEST-4411 keys rotate scope", "carol@customer.example", ("customers",), "bm25"
    )
    assert "zendesk:35436/internal" not in {h.doc_id for h in as_customer}
    assert kb.search("tickets", "CHG-881 autoscaler", "dev", ("customers",), "bm25") == []
    as_agent = kb.search("tickets", "KEST-4411 keys rotate scope", "sam", ("agents",), "bm25")
    assert as_agent[0].doc_id == "zendesk:35436/internal"
    public = kb.search("tickets", "rotate key greyed out", "carol", ("customers",), "bm25")
    assert public[0].doc_id == "zendesk:35436"
    # Filter by status, as metadata.
    solved = kb.search(
        "tickets", "invoice VAT", "sam", ("agents",), "bm25", filters={"status": "solved"}
    )
    assert [h.doc_id for h in solved] == ["zendesk:35437"]


def test_format_option_and_bad_tickets(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = _copy(tmp_path)
    docs, skipped = _read(root / "jira.csv", fmt="github")
    assert docs == {}
    assert [s.reason for s in skipped] == [
        "not a GitHub issues CSV export (its header is Summary, Issue key, Issue id, "
        "Issue Type, Status, Priority, ...)"
    ]
    docs, skipped = _read(root / "zendesk.jsonl", fmt="jira")
    assert docs == {}
    assert {s.reason for s in skipped} == {"bad ticket: not a Jira record (no 'fields' field)"}
    with (root / "zendesk.jsonl").open("a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"id": None, "subject": "x", "via": {}}) + "\n")
    report = kb.ingest_path(root, "t")
    reasons = {s.item: s.reason for s in report.skipped}
    assert reasons["zendesk.jsonl:3"].startswith("bad ticket: Expecting property name")
    assert reasons["zendesk.jsonl:4"] == "bad ticket: the ticket has no id"
    assert report.added == 12


def test_incremental_sync_and_erase_of_a_requester(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = _copy(tmp_path)
    kb.ingest_path(root, "t")
    again = kb.ingest_path(root, "t")
    assert (again.added, again.updated, again.deleted, again.chunks) == (0, 0, 0, 0)
    lines = (root / "zendesk.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["status"] = "solved"
    (root / "zendesk.jsonl").write_text(json.dumps(first) + "\n" + lines[1] + "\n")
    third = kb.ingest_path(root, "t")
    assert (third.added, third.updated, third.unchanged) == (0, 2, 10)  # public + internal
    doc = kb.get_document("t", "zendesk:35436")
    assert doc is not None
    assert doc.metadata["status"] == "solved"
    receipt = erase(kb, "t", subject="carol@customer.example")
    assert receipt.documents == 2
    with kb.store.session() as s:
        left = s.scalars(
            sa.select(KbChunk.doc_id).where(KbChunk.doc_id.like("zendesk:35436%"))
        ).all()
        assert left == []
        assert s.get(KbDocument, ("t", "zendesk:35436/internal")) is None


def test_cli_format_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")
    assert run(["db", "upgrade"]) == 0
    capsys.readouterr()
    target = str(FIXTURES / "github.jsonl")
    assert run(["kb", "ingest", target, "-c", "t", "--format", "github", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    assert run(["kb", "ingest", target, "-c", "t", "--format", "servicenow"]) == 2
    err = capsys.readouterr().err
    assert "unknown ticket export format 'servicenow'" in err
    assert "Traceback" not in err
