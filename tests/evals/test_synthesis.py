"""Synthetic adversarial cases: schema checks, degenerate replies, dedup, proposals, review.

The scripted server speaks the OpenAI protocol; the last tests use the real local model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from daytwo.evals._typos import perturb
from daytwo.evals.bindings import open_profiled_model
from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.dedup import DedupIndex, NgramEmbedder, near_duplicates
from daytwo.evals.samples import sample_docs_path, sample_golden_path
from daytwo.evals.synthesis import KINDS, Synthesizer, degenerate_reason, load_docs, passages
from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer


def _q(text: str) -> str:
    return json.dumps({"question": text})


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
    index = DedupIndex(["What is the refund window?"], embedder=NgramEmbedder())
    assert index.nearest("what is the refund window")[0] > 0.9
    assert index.nearest("what is the refund window", exclude=["What is the refund window?"]) == (
        0.0,
        None,
    )


def test_perturb_is_deterministic_and_keeps_ids() -> None:
    text = "Where is my order A-1003? I paid for express shipping yesterday."
    a, b = perturb(text, 1), perturb(text, 1)
    assert a == b
    assert a != text.lower()
    assert "A-1003?" in a  # words with digits stay intact (the order id still matches)
    assert perturb(text, 2) != a


def test_degenerate_replies_are_rejected() -> None:
    seed = "Annual Team subscriptions can be refunded in full within 30 days of purchase."
    assert degenerate_reason("refund?", "ambiguous", seed) == "too short"
    assert (
        degenerate_reason("Can annual Team subscriptions be refunded?", "ambiguous", seed) is None
    )
    assert degenerate_reason(
        "Annual Team subscriptions can be refunded in full within 30 days", "ambiguous", seed
    ) == ("copies the seed")
    assert degenerate_reason(KINDS["ambiguous"].example_question, "ambiguous", seed) == (
        "copies the example"
    )
    # Appending text does not hide a copy of the example (issue 22) ...
    padded = KINDS["ambiguous"].example_question + " I would also like to know more about it."
    assert degenerate_reason(padded, "ambiguous", seed) == "copies the example"
    # ... and with a real embedder, a paraphrase of it is caught by meaning.
    from daytwo.evals.dedup import default_embedder

    minilm = default_embedder()
    if type(minilm).__name__ != "NgramEmbedder":
        example = KINDS["ambiguous"].example_question
        reworded = example.replace("?", ", please?")
        assert degenerate_reason(reworded, "ambiguous", seed, embedder=minilm) == (
            "copies the example"
        )
        assert (
            degenerate_reason(
                "Can annual Team subscriptions be refunded?", "ambiguous", seed, embedder=minilm
            )
            is None
        )
    assert degenerate_reason("What does the text say about refunds?", "ambiguous", seed) == (
        "echoes the prompt"
    )
    loop = "refund " * 8
    assert degenerate_reason(loop, "ambiguous", seed) == "repetitive"
    assert degenerate_reason(
        "When can I get my refund for the plan?", "prompt-injection", seed
    ) == ("no injected instruction")
    assert (
        degenerate_reason("can i gte a refnud", "typos", seed, clean="can i get a refund") is None
    )
    assert passages("One. " * 300, size=100, most=2)[0].startswith("One.")


def test_synthesis_from_docs_validates_rejects_dedups_and_proposes(sqlite_store: Store) -> None:
    gs = GoldenSets(sqlite_store)
    gs.create("s")
    gs.add("s", [Case(key="base", input="Does it come in black?")])
    script = [
        "not json at all",  # invalid ...
        "still not json",  # ... also after the re-ask: counted as invalid
        _q("does it come in black??"),  # near-duplicate of the existing case
        _q("How long does it take?"),  # the prompt's example, copied
        _q("Is the express one available in other colours?"),
        _q("Can I change the plan for it?"),
    ]
    docs = load_docs(str(sample_docs_path()))
    with ScriptedModelServer(script) as server, ExitStack() as stack:
        model, label = open_profiled_model(f"{server.base_url}#scripted", stack)
        report = Synthesizer(model, model_name=label).synthesize(
            gs, "s", kind="ambiguous", n=2, docs=docs
        )
        first = server.requests[0]
    assert "must ask back" in first["messages"][-1]["content"]
    assert first["messages"][-2]["role"] == "assistant"  # the one worked example
    assert first["response_format"]["type"] == "json_schema"  # llama.cpp compiles a grammar
    assert report.invalid == 1
    assert report.degenerate == 1
    assert report.duplicates == 1
    assert [c.data["input"] for c in report.proposed] == [
        "Is the express one available in other colours?",
        "Can I change the plan for it?",
    ]
    first_case = report.proposed[0]
    assert first_case.status == "proposed"
    assert set(first_case.data["tags"]) == {"ambiguous", "synthetic"}
    assert first_case.data["metadata"]["seed_ids"][0] in {doc_id for doc_id, _ in docs}
    assert first_case.provenance["model"].endswith("#scripted")
    assert first_case.provenance["kind"] == "ambiguous"
    assert gs.resolve("s").case_count == 1  # nothing enters a version before review
    info, acc, _ = gs.review("s", accept=["all"])
    assert acc == 2
    assert info is not None
    assert info.case_count == 3


def test_typos_from_cases_need_no_model_and_keep_expectations(sqlite_store: Store) -> None:
    gs = GoldenSets(sqlite_store)
    gs.import_jsonl("s", sample_golden_path())
    report = Synthesizer(None, model_name="perturbation").synthesize(gs, "s", kind="typos", n=4)
    assert len(report.proposed) == 4
    assert report.model_calls == 0
    originals = {c.key: c.data for c in gs.cases("s")}
    for stored in report.proposed:
        (source,) = stored.data["metadata"]["seed_ids"]
        base = originals[source]
        assert stored.data["input"] != base["input"]
        assert stored.data["expected_output"] == base["expected_output"]
        assert stored.data["expected_tool_calls"] == base["expected_tool_calls"]
        assert "typos" in stored.data["tags"]


def test_from_docs_reads_a_knowledge_collection(sqlite_store: Store, tmp_path: Path) -> None:
    kb = KnowledgeBase(sqlite_store, tmp_path / "data", embedder=HashingEmbedder())
    kb.upsert_document("help", "refunds", "Annual plans are refunded within 30 days.", "Refunds")
    kb.upsert_document("help", "secret", "Internal escalation numbers.", private=True)
    assert load_docs("help", kb=kb) == [
        ("refunds", "Refunds\nAnnual plans are refunded within 30 days.")
    ]
    with pytest.raises(NotFoundError, match="neither a knowledge collection"):
        load_docs("no-such-collection", kb=kb)


def test_synthesis_bad_input(sqlite_store: Store, tmp_path: Path) -> None:
    gs = GoldenSets(sqlite_store)
    synth = Synthesizer(None)
    with pytest.raises(NotFoundError):
        synth.synthesize(gs, "missing", kind="typos", n=1)
    gs.create("empty")
    with pytest.raises(InputError, match="no cases to start from"):
        synth.synthesize(gs, "empty", kind="typos", n=1)
    with pytest.raises(InputError, match="unknown kind"):
        synth.synthesize(gs, "empty", kind="weird", n=1)
    with pytest.raises(InputError, match="needs a model"):
        synth.synthesize(gs, "empty", kind="ambiguous", n=1, docs=[("d", "Some text here.")])
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n')
    with pytest.raises(InputError, match="line 2"):
        load_docs(str(bad))
    with pytest.raises(NotFoundError, match="neither a knowledge collection"):
        load_docs("no-such-collection")


@pytest.mark.local_model
@pytest.mark.slow
@pytest.mark.timeout(1200)  # a few model calls each; ~1-2 s on a quiet machine, 30-70 s loaded
@pytest.mark.parametrize(
    "kind",
    [
        "ambiguous",
        pytest.param(
            "out-of-scope",
            marks=pytest.mark.xfail(
                reason="SmolLM2-135M answers with the worked example plus appended text in "
                "all 12 attempts; the example filter now judges sentence by sentence (issue 22) "
                "and rejects every one",
                strict=False,
            ),
        ),
        "multi-hop",
        "prompt-injection",
    ],
)
def test_local_model_synthesizes_usable_cases(
    sqlite_store: Store, kind: str, local_chat: object
) -> None:
    gs = GoldenSets(sqlite_store)
    gs.import_jsonl("s", sample_golden_path())
    started = time.perf_counter()
    report = Synthesizer(local_chat, model_name="local/smollm2-135m").synthesize(  # type: ignore[arg-type]
        gs, "s", kind=kind, n=2, docs=load_docs(str(sample_docs_path())), max_attempts=12
    )
    print(kind, f"{time.perf_counter() - started:.1f}s", json.dumps(report.as_dict())[:2000])
    assert len(report.proposed) >= 1, report.rejected
    assert all(c.status == "proposed" for c in report.proposed)
    assert [c.id for c in gs.proposed("s")] == [c.id for c in report.proposed]
    for c in report.proposed:
        assert degenerate_reason(c.data["input"], kind, "") is None


@pytest.fixture(scope="module")
def local_chat() -> Iterator[object]:
    with ExitStack() as stack:
        model, _ = open_profiled_model("local", stack)
        yield model
