"""`daytwo kb`: ingest with skip reasons, search as a principal, stats, bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytwo.cli.main import run

from .conftest import write_docs


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")
    assert run(["db", "upgrade"]) == 0
    return write_docs(
        tmp_path / "docs",
        {
            "refunds.md": "# Refunds\nRefunds go back to the original card.",
            "shipping.txt": "We ship worldwide.",
            "logo.svg": "<svg/>",
        },
    )


def test_ingest_search_stats(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["kb", "ingest", str(cli_env), "-c", "help", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 2
    assert report["skipped"] == [{"item": "logo.svg", "reason": "unsupported file type .svg"}]
    assert run(["kb", "ingest", str(cli_env), "-c", "help"]) == 0
    out = capsys.readouterr().out
    assert "0 added" in out
    assert "2 unchanged" in out
    assert "skipped logo.svg: unsupported file type .svg" in out
    args = ["kb", "search", "refunds card", "--as", "ann", "-g", "staff", "-c", "help"]
    assert run([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hits"][0]["doc_id"] == "refunds.md"
    assert set(data["hits"][0]["contributions"]) == {"bm25", "dense"}
    assert run([*args, "--mode", "bm25"]) == 0
    assert "refunds.md" in capsys.readouterr().out
    assert run(["kb", "search", "refunds", "--as", "stranger", "-c", "help", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []
    assert run(["kb", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["collections"][0]["documents"] == 2
    assert run(["kb", "stats"]) == 0
    assert "help: 2 documents" in capsys.readouterr().out


def test_private_ingest(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private = write_docs(cli_env.parent / "hr", {"pay.txt": "salary bands"})
    assert run(["kb", "ingest", str(private), "--private", "--acl", "group:hr", "--json"]) == 0
    capsys.readouterr()
    for groups, expected in ((["-g", "staff"], []), (["-g", "hr"], ["pay.txt"])):
        assert run(["kb", "search", "salary", "--as", "x", *groups, "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
        assert [h["doc_id"] for h in hits] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kb", "ingest", "/nonexistent/folder"], "does not exist"),
        (["kb", "ingest", "DOCS", "--acl", "role:x"], "ACL entry"),
        (["kb", "ingest", "DOCS", "-c", "bad name"], "collection name"),
        (["kb", "ingest", "sqlite:///x.db"], "needs a table or a query"),
        (["kb", "search", "q", "--as", "a", "-c", "missing"], "does not exist"),
        (["kb", "search", "q", "--as", "a", "--mode", "fuzzy"], "unknown search mode"),
        (["kb", "search", "q", "--as", "a", "--filter", "novalue"], "key=value"),
        (["kb", "stats", "-c", "missing"], "does not exist"),
    ],
)
def test_bad_input_is_one_red_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(["kb", "ingest", str(cli_env), "--json"]) == 0
    capsys.readouterr()
    args = [str(cli_env) if a == "DOCS" else a for a in args]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one line, possibly soft-wrapped by Rich


def test_sources_never_overwrite_each_other(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: rows 1, 2 from one source, then id 1 from another: the second sync skips
    id 1 (named, with the fix), the first source's document stays, and re-syncing either
    source changes nothing of the other's; `kb sources` lists both."""
    crm = tmp_path / "crm.jsonl"
    crm.write_text(
        '{"id": "1", "text": "CRM row one about invoices"}\n'
        '{"id": "2", "text": "CRM row two about credit notes"}\n',
        encoding="utf-8",
    )
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("id,text\n1,Spreadsheet row one about holidays\n3,Row three\n", "utf-8")
    assert run(["kb", "ingest", str(crm), "-c", "mix", "--source", "crm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    for _ in range(2):
        assert run(["kb", "ingest", str(sheet), "-c", "mix", "--source", "sheet", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["updated"] == 0
        assert [s["item"] for s in report["skipped"]] == ["1"]
        assert "belongs to source 'crm'" in report["skipped"][0]["reason"]
        assert run(["kb", "ingest", str(crm), "-c", "mix", "--source", "crm", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["unchanged"], report["updated"], report["deleted"]) == (2, 0, 0)
    args = ["kb", "search", "invoices", "--as", "ann", "-g", "x", "-c", "mix", "--json"]
    assert run(args) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["doc_id"] == "1"
    assert "invoices" in hits[0]["text"]
    assert run(["kb", "sources", "-c", "mix", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sources"]
    assert [(r["source"], r["documents"]) for r in rows] == [("crm", 2), ("sheet", 1)]
    assert run(["kb", "ingest", str(sheet), "-c", "mix", "--source", "bad name!"]) == 2
    assert "source name 'bad name!' is not valid" in capsys.readouterr().err


def test_ingest_with_an_analyzer(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = write_docs(cli_env.parent / "de", {"wohnen.txt": "Die Häuser am Fluss sind alt."})
    assert run(["kb", "ingest", str(docs), "-c", "de", "--analyzer", "klingon"]) == 2
    err = capsys.readouterr().err
    assert "unknown analyzer 'klingon'" in err
    assert "german" in err
    assert "Traceback" not in err
    assert run(["kb", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["collections"] == []  # nothing written
    assert run(["kb", "ingest", str(docs), "-c", "de", "--analyzer", "german"]) == 0
    capsys.readouterr()
    args = ["kb", "search", "Haus", "--as", "ann", "-g", "staff", "-c", "de", "--mode", "bm25"]
    assert run([*args, "--json"]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["wohnen.txt"]
    assert run(["kb", "ingest", str(docs), "-c", "de", "--analyzer", "french"]) == 2
    assert "--analyzer french" in capsys.readouterr().err
    assert run(["kb", "migrate", "--collection", "de", "--analyzer", "klingon"]) == 2
    assert "unknown analyzer 'klingon'" in capsys.readouterr().err
    # nothing was started: a migration to another target is not refused as a conflict
    assert run(["kb", "migrate", "--collection", "de", "--analyzer", "simple", "--json"]) == 0
    capsys.readouterr()
    assert run(["kb", "cutover", "--collection", "de"]) == 0
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []  # simple: no stemming
    assert run(["kb", "ingest", "--help"]) == 0
    assert "--analyzer" in capsys.readouterr().out
