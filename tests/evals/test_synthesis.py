"""Synthetic adversarial cases (scripted server): schema checks, dedup, proposals, review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.dedup import NgramEmbedder, near_duplicates
from daytwo.evals.samples import sample_docs_path
from daytwo.evals.synthesis import Synthesizer, load_docs
from daytwo.exceptions import InputError, NotFoundError
from daytwo.models import OpenAICompatProvider
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer


def _case(text: str) -> str:
    return json.dumps({"input": text, "expected_behavior": "ask which product"})


def test_near_duplicates() -> None:
    out = near_duplicates(
        ["Where is my order A-1001?", "where is my order a-1001", "How do I reset my password?"],
        ["What is the refund window?"],
        embedder=NgramEmbedder(),
    )
    assert out[0][1] < 0.6
    assert out[1][1] > 0.9  # duplicate of the first candidate
    assert out[1][2] == "Where is my order A-1001?"
    assert out[2][1] < 0.6


def test_synthesis_validates_dedups_and_proposes(sqlite_store: Store) -> None:
    gs = GoldenSets(sqlite_store)
    gs.create("s")
    gs.add("s", [Case(key="base", input="Does it come in black?")])
    script = [
        "not json at all",  # invalid ...
        "still not json",  # ... also after the re-ask: counted as invalid
        _case("does it come in black??"),  # near-duplicate of the existing case
        _case("Is the express one available in other colours?"),
        json.dumps({"input": "x"}),  # schema: input too short, expected_behavior missing
        json.dumps({"input": "hi"}),  # the re-ask fails too
        _case("Can I change the plan for it?"),
    ]
    docs = load_docs(str(sample_docs_path()))
    with ScriptedModelServer(script) as server:
        synth = Synthesizer(
            OpenAICompatProvider(server.base_url, max_retries=0), model_name="scripted"
        )
        report = synth.synthesize(gs, "s", kind="ambiguous", n=2, docs=docs)
        prompt = server.requests[0]["messages"][-1]["content"]
    assert "clarifying question" in prompt
    assert report.invalid == 2
    assert report.duplicates == 1
    assert [c.data["input"] for c in report.proposed] == [
        "Is the express one available in other colours?",
        "Can I change the plan for it?",
    ]
    first = report.proposed[0]
    assert first.status == "proposed"
    assert set(first.data["tags"]) == {"ambiguous", "synthetic"}
    assert first.data["relevant_doc_ids"][0] in {doc_id for doc_id, _ in docs}
    assert first.provenance["model"] == "scripted"
    assert first.provenance["kind"] == "ambiguous"
    assert gs.resolve("s").case_count == 1  # nothing enters a version before review
    info, acc, _ = gs.review("s", accept=["all"])
    assert acc == 2
    assert info is not None
    assert info.case_count == 3


def test_synthesis_bad_input(sqlite_store: Store, tmp_path: Path) -> None:
    gs = GoldenSets(sqlite_store)
    synth = Synthesizer(OpenAICompatProvider("http://127.0.0.1:9", max_retries=0))
    with pytest.raises(NotFoundError):
        synth.synthesize(gs, "missing", kind="typos", n=1)
    gs.create("empty")
    with pytest.raises(InputError, match="no cases to start from"):
        synth.synthesize(gs, "empty", kind="typos", n=1)
    with pytest.raises(InputError, match="unknown kind"):
        synth.synthesize(gs, "empty", kind="weird", n=1)
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n')
    with pytest.raises(InputError, match="line 2"):
        load_docs(str(bad))
    with pytest.raises(NotFoundError, match="neither a file"):
        load_docs("no-such-collection")
