"""`daytwo kb bulk`: the NDJSON bulk writes from a file, per-line results, exit 1 on a bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytwo.cli.main import run


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")
    assert run(["db", "upgrade"]) == 0
    return tmp_path


def test_kb_bulk_from_a_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = cli_env / "good.ndjson"
    good.write_text(
        "\n".join(json.dumps({"doc_id": f"d{i}", "text": f"harbour crane {i}"}) for i in range(70))
        + "\n",
        encoding="utf-8",
    )
    assert run(["kb", "bulk", str(good), "-c", "port"]) == 0
    assert "port: 70 stored, 0 erased, 0 not found, 0 failed (70 lines)" in capsys.readouterr().out
    mixed = cli_env / "mixed.ndjson"
    mixed.write_text(
        '{"op": "delete", "doc_id": "d1"}\n{"doc_id": "x"}\n{"doc_id": "d2", "text": "new"}',
        encoding="utf-8",
    )
    assert run(["kb", "bulk", str(mixed), "-c", "port", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(i["line"], i["status"]) for i in out["items"]] == [
        (1, "erased"),
        (2, "error"),
        (3, "stored"),
    ]
    assert "text must be a string" in out["items"][1]["error"]
    assert run(["kb", "bulk", str(cli_env / "missing.ndjson"), "-c", "port"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_kb_snapshot_and_restore(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = cli_env / "docs.ndjson"
    docs.write_text(
        "\n".join(json.dumps({"doc_id": f"d{i}", "text": f"harbour crane {i}"}) for i in range(5)),
        encoding="utf-8",
    )
    assert run(["kb", "bulk", str(docs), "-c", "port"]) == 0
    snap = cli_env / "port.snap"
    assert run(["kb", "snapshot", str(snap), "-c", "port", "--json"]) == 0
    capsys.readouterr()
    assert run(["kb", "restore", str(snap), "-c", "copy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]["document"] == 5
    search = ["kb", "search", "crane 3", "--as", "bob", "-g", "x", "--mode", "bm25", "--json"]
    assert run([*search, "-c", "port"]) == 0
    original = [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]]
    assert run([*search, "-c", "copy"]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == original
    assert run(["kb", "restore", str(snap), "-c", "copy"]) == 2
    assert "already exists" in capsys.readouterr().err
    docs.write_bytes(b"not a snapshot")
    assert run(["kb", "restore", str(docs), "-c", "other"]) == 2
    assert "not a daytwo knowledge snapshot" in capsys.readouterr().err
