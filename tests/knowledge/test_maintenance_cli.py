"""`daytwo kb migrate|generations|cutover|rollback|erase|vacuum|health`: JSON and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daytwo.cli.main import run


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DAYTWO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAYTWO_EMBEDDER", "hashing-384")

    def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = run(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run(["db", "upgrade"]) == 0
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"n{i}",
                    "text": f"Refund policy note {i}: orders ship in {i} days. Keyword uniq{i}.",
                    "customer": f"c-{i % 2}",
                }
            )
            for i in range(10)
        ),
        encoding="utf-8",
    )
    assert run(["kb", "ingest", str(docs), "-c", "kb1", "--json"]) == 0
    return invoke


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.embedder
def test_migrate_hashing_to_minilm_and_back(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "kb", "cutover", "-c", "kb1")
    assert code == 2
    assert "no migration in progress" in error_line(err)
    code, _, err = cli(capsys, "kb", "migrate", "-c", "kb1", "--embedder", "nope-1")
    assert code == 2
    assert "unknown embedder 'nope-1'" in error_line(err)
    code, _, err = cli(capsys, "kb", "migrate", "-c", "kb1", "--embedder", "x", "--chunking", "z")
    assert code == 2
    assert "size=N or overlap=N" in error_line(err)

    code, out, _ = cli(
        capsys, "kb", "migrate", "-c", "kb1", "--embedder", "minilm-l6-int8", "--json"
    )
    assert code == 0
    status = json.loads(out)
    assert status["state"] == "ready"
    assert status["progress"] == {"done": 10, "total": 10}
    code, _, err = cli(
        capsys, "kb", "migrate", "-c", "kb1", "--embedder", "hashing-384", "--chunking", "size=64"
    )
    assert code == 2
    assert "already has a migration in progress" in error_line(err)
    code, out, _ = cli(capsys, "kb", "generations", "-c", "kb1", "--json")
    coll = json.loads(out)["collections"][0]
    assert [g["state"] for g in coll["generations"]] == ["active", "shadow"]
    assert coll["generations"][1]["embedder"] == "minilm-l6-int8"
    assert coll["generations"][1]["dim"] == 384
    assert coll["migration"]["state"] == "ready"

    code, out, _ = cli(capsys, "kb", "cutover", "-c", "kb1", "--json")
    assert code == 0
    assert json.loads(out)["state"] == "cut_over"
    code, out, _ = cli(
        capsys,
        "kb",
        "search",
        "how long until my order ships",
        "--as",
        "a",
        "-g",
        "x",
        "-c",
        "kb1",
        "--mode",
        "dense",
        "--json",
    )
    assert code == 0
    assert len(json.loads(out)) >= 1
    code, out, _ = cli(capsys, "kb", "rollback", "-c", "kb1", "--json")
    assert json.loads(out)["state"] == "rolled_back"
    code, out, _ = cli(capsys, "kb", "generations", "prune", "--json")
    pruned = json.loads(out)["pruned"]
    assert pruned[0]["pruned_generation"] == status["target_generation"]
    assert pruned[0]["state"] == "abandoned"


def test_erase_health_vacuum(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "kb", "erase", "-c", "kb1", "--document", "missing")
    assert code == 2
    assert "document 'missing' does not exist" in error_line(err)
    code, _, err = cli(capsys, "kb", "erase", "-c", "kb1")
    assert code == 2
    assert "exactly one of" in error_line(err)
    code, out, _ = cli(
        capsys, "kb", "erase", "-c", "kb1", "--where", "customer=c-1", "--actor", "dpo", "--json"
    )
    assert code == 0
    receipt = json.loads(out)
    assert receipt["documents"] == 5
    assert receipt["actor"] == "dpo"
    assert receipt["auto_vacuum"]["triggered_by"]["max_tombstone_ratio"] == 0.5
    code, out, _ = cli(
        capsys,
        "kb",
        "erase",
        "-c",
        "kb1",
        "--document",
        "n0",
        "--json",
        "--auto-vacuum-threshold",
        "0.9",
    )
    assert json.loads(out)["auto_vacuum"] is None
    code, out, _ = cli(capsys, "kb", "health", "-c", "kb1", "--samples", "5", "--json")
    gen = json.loads(out)["generations"][0]
    assert gen["vectors"] == 4
    assert gen["tombstones"] == 1
    assert gen["recall_at_10"] == 1.0
    code, out, _ = cli(capsys, "kb", "vacuum", "-c", "kb1", "--if-above", "0.5", "--json")
    assert json.loads(out)["skipped"] == "below threshold"
    code, out, _ = cli(capsys, "kb", "vacuum", "-c", "kb1", "--json")
    assert json.loads(out)["generations"][0]["tombstones_removed"] == 1
    code, out, _ = cli(capsys, "kb", "health", "--json")
    assert json.loads(out)["generations"][0]["tombstone_ratio"] == 0.0
    code, _, err = cli(capsys, "kb", "health", "-c", "nope")
    assert code == 2
    assert "collection 'nope' does not exist" in error_line(err)


def test_follow_references(cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wiki = tmp_path / "wiki.jsonl"
    wiki.write_text(
        '{"id": "p1", "text": "Shipping zones overview, see [[p2]]"}\n'
        '{"id": "p2", "text": "Zone rates, back to [[p1]] and ref:p3"}\n'
        '{"id": "p3", "text": "Customs notes"}\n'
    )
    assert run(["kb", "ingest", str(wiki), "-c", "wiki"]) == 0
    capsys.readouterr()
    code, out, _ = cli(
        capsys,
        "kb",
        "follow",
        "shipping zones overview",
        "--as",
        "a",
        "-g",
        "x",
        "-c",
        "wiki",
        "-k",
        "1",
        "--max-depth",
        "1",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert [n["doc_id"] for n in data["nodes"]] == ["p1", "p2"]
    assert data["stop_reason"] == "depth"
    code, _, err = cli(capsys, "kb", "follow", "x", "--as", "a", "--max-nodes", "0")
    assert code == 2
    assert "max_nodes=0" in error_line(err)


def test_generations_with_golden_set(
    cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = cli(
        capsys,
        "kb",
        "migrate",
        "-c",
        "kb1",
        "--embedder",
        "hashing-384",
        "--chunking",
        "size=16,overlap=2",
        "--shadow-reads",
        "1",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["state"] == "ready"
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        '{"query": "uniq3", "relevant": ["n3"]}\n{"query": "uniq5", "relevant": ["n5"]}\n'
    )
    code, _, err = cli(capsys, "kb", "generations", "--golden", str(golden), "--json")
    assert code == 2
    assert "--golden needs --collection" in error_line(err)
    code, out, _ = cli(
        capsys,
        "kb",
        "generations",
        "-c",
        "kb1",
        "--golden",
        str(golden),
        "--as",
        "a",
        "-g",
        "x",
        "--json",
    )
    gens = json.loads(out)["collections"][0]["generations"]
    assert [g["ndcg_at_10"] for g in gens] == [1.0, 1.0]
    code, out, _ = cli(capsys, "kb", "generations")
    assert "migration" in out
    assert "overlap@10" in out


def test_migrate_estimate_prints_a_prediction_and_starts_nothing(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("kb", "migrate", "-c", "kb1", "--embedder", "hashing-384", "--chunking", "size=64")
    code, out, _ = cli(capsys, *args, "--estimate", "--json")
    assert code == 0
    est = json.loads(out)
    assert est["documents"] == 10
    assert est["sample"]["documents"] == 10
    assert est["chunking"] == {"size": 64, "overlap": 40}
    predicted = est["predicted"]
    assert predicted["chunks"] == 10
    assert predicted["storage_bytes"]["vectors"] == 10 * 384 * 4
    assert predicted["storage_bytes"]["total"] == sum(
        predicted["storage_bytes"][k] for k in ("vectors", "index", "text")
    )
    assert est["current_generation_storage_bytes"]["vectors"] == 10 * 384 * 4
    code, out, _ = cli(capsys, *args, "--estimate")
    text = " ".join(out.split())  # the console wraps lines
    assert code == 0
    assert "nothing was started" in text
    assert "for 10 documents" in text
    code, out, _ = cli(capsys, "kb", "generations", "-c", "kb1", "--json")
    coll = json.loads(out)["collections"][0]
    assert len(coll["generations"]) == 1
    assert coll["migration"] is None

    code, _, err = cli(capsys, *args, "--estimate", "--sample-cap", "0")
    assert code == 2
    assert "sample cap 0" in error_line(err)
    code, _, err = cli(capsys, "kb", "migrate", "-c", "nope", "--embedder", "hashing-384",
                       "--estimate")  # fmt: skip
    assert code == 2
    assert "'nope'" in error_line(err)
    code, _, err = cli(capsys, "kb", "migrate", "-c", "kb1", "--embedder", "nope-1", "--estimate")
    assert code == 2
    assert "unknown embedder 'nope-1'" in error_line(err)
