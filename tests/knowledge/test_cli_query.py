"""`daytwo kb search` query options: --where typed filters, --fusion, --group-by, --cursor;
bad input is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytwo.cli.main import run
from daytwo.testing.rerank_server import ScriptedRerankServer


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")
    assert run(["db", "upgrade"]) == 0
    lines = [
        {"id": f"d{i}", "text": f"refund policy number {i}", "metadata": {"year": 2018 + i}}
        for i in range(6)
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    assert run(["kb", "ingest", str(path), "-c", "q"]) == 0
    return tmp_path


SEARCH = ["kb", "search", "refund policy", "--as", "ann", "-g", "staff", "-c", "q", "--json"]


def test_where_fusion_group_and_cursor(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    where = json.dumps({"must": [{"key": "year", "range": {"gte": 2021}}]})
    assert run([*SEARCH, "--where", where, "--fusion", "convex", "--alpha", "0.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {h["doc_id"] for h in data["hits"]} == {"d3", "d4", "d5"}
    (cli_env / "f.json").write_text(where, encoding="utf-8")
    assert (
        run([*SEARCH, "--where", f"@{cli_env / 'f.json'}", "-k", "2", "--group-by", "document"])
        == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert len(first["hits"]) == 2
    assert first["hits"][0]["chunks"]
    cursor = first["next_cursor"]
    assert cursor
    args = [*SEARCH, "--where", where, "-k", "2", "--group-by", "document", "--cursor", cursor]
    assert run(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert len(second["hits"]) == 1
    assert second["next_cursor"] is None
    assert {h["doc_id"] for h in first["hits"] + second["hits"]} == {"d3", "d4", "d5"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--where", "{nope"], "--where is not JSON"),
        (["--where", '{"must": [{"key": "year", "range": {"gte": "x"}}]}'], "range.gte"),
        (["--fusion", "max"], "unknown fusion method"),
        (["--alpha", "0.3"], "--rrf-k and --alpha need --fusion"),
        (["--group-by", "page"], "unknown group_by"),
        (["--cursor", "abc"], "not one this server issued"),
    ],
)
def test_bad_query_options_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    capsys.readouterr()
    assert run([*SEARCH, *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err


def test_keyword_flags(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = [*SEARCH[:2], "refund AND number -2018", *SEARCH[3:], "--mode", "bm25"]
    assert run([*args, "--syntax", "boolean", "--highlight", "--title-boost", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["hits"]) == 6
    hit = data["hits"][0]
    assert [hit["text"][m["start"] : m["end"]] for m in hit["highlights"]] == ["refund", "number"]
    assert run([*args, "--syntax", "boolean", "--where", '{"year": 2018}']) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["doc_id"] == "d0"
    assert run([*args, "--syntax", "sql"]) == 2
    captured = capsys.readouterr()
    assert "unknown query syntax" in captured.out + captured.err


def test_rerank_by_configured_name(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scripted cross-encoder ranks by the trailing number, highest first.
    scores = {f"refund policy number {i}": float(i) for i in range(6)}
    with ScriptedRerankServer(scores=scores) as up, ScriptedRerankServer(status=500) as down:
        rerankers = {"lex": up.url, "broken": down.url}
        monkeypatch.setenv("DAYTWO_RERANKERS", json.dumps(rerankers))
        capsys.readouterr()
        args = [*SEARCH, "--mode", "bm25", "-k", "2", "--rerank", "lex", "--rerank-depth", "6"]
        assert run(args) == 0
        first = json.loads(capsys.readouterr().out)
        assert [h["doc_id"] for h in first["hits"]] == ["d5", "d4"]
        assert first["hits"][0]["contributions"]["rerank"] == {"score": 5.0, "rank": 1}
        assert run([*args, "--cursor", first["next_cursor"]]) == 0
        assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["d3", "d2"]
        assert len(up.requests) == 2
        assert len(up.requests[0]["texts"]) == 6
        assert run([*SEARCH[:-1], "--mode", "bm25", "--rerank", "lex"]) == 0  # as a table
        table = capsys.readouterr().out
        assert "rerank" in table
        assert "#1 5.000" in table
        assert run([*SEARCH, "--rerank", "nope"]) == 2
        err = capsys.readouterr().err
        assert "unknown reranker 'nope'" in err
        assert "lex" in err
        assert "Traceback" not in err
        assert run([*SEARCH, "--rerank", "broken"]) != 0
        err = capsys.readouterr().err
        assert "reranker broken failed: HTTP 500" in err
        assert "Traceback" not in err
        assert down.url not in err
