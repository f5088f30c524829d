"""The optional reranking stage: a cross-encoder rescoring the first hits of a search.

No registry package ships cross-encoder weights that run offline (the ms-marco MiniLM
rerankers on PyPI, e.g. FlashRank, download their ONNX files at run time, which daytwo
never does), so daytwo ships the interface and one real client: :class:`TeiReranker`
speaks the ``POST /rerank`` protocol of Hugging Face Text Embeddings Inference (and of
the servers that copy it), so a cross-encoder you serve yourself (for example
``cross-encoder/ms-marco-MiniLM-L-6-v2`` under TEI) plugs in by URL. The scripted
double :class:`daytwo.testing.rerank_server.ScriptedRerankServer` speaks the same
protocol for tests. Any object with ``name`` and ``score(query, texts)`` is a reranker.

:func:`rerank` rescores the hits a search returned (the principal's, after the ACL)
and reorders them; each hit keeps its fused score under ``contributions["fused"]``
and gets ``contributions["rerank"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import httpx

from daytwo.exceptions import TransportError
from daytwo.knowledge.search import Hit

__all__ = ["Reranker", "TeiReranker", "rerank"]


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in the order given."""
        ...


class TeiReranker:
    """A cross-encoder behind the Text Embeddings Inference ``/rerank`` protocol."""

    def __init__(self, url: str, *, timeout: float = 10.0, truncate: bool = True) -> None:
        self.url = url.rstrip("/")
        self.name = f"tei:{self.url}"
        self._truncate = truncate
        self._client = httpx.Client(timeout=timeout)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        body = {
            "query": query,
            "texts": list(texts),
            "raw_scores": True,
            "truncate": self._truncate,
        }
        try:
            response = self._client.post(f"{self.url}/rerank", json=body)
            response.raise_for_status()
            ranked = response.json()
            scores = [0.0] * len(texts)
            seen = set()
            for item in ranked:
                index = int(item["index"])
                scores[index] = float(item["score"])
                seen.add(index)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise TransportError(
                f"reranker {self.url} failed: {exc}",
                hint="check that the /rerank server is up and speaks the TEI protocol",
            ) from exc
        if len(seen) != len(texts):
            raise TransportError(
                f"reranker {self.url} scored {len(seen)} of {len(texts)} passages",
                hint="check the server's max batch size",
            )
        return scores

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def rerank(query: str, hits: Sequence[Hit], reranker: Reranker, k: int | None = None) -> list[Hit]:
    """``hits`` rescored by ``reranker`` and reordered (ties keep the search's order),
    the first ``k`` (all when None)."""
    if not hits:
        return []
    texts = [f"{h.title}\n{h.text}" if h.title else h.text for h in hits]
    scores = reranker.score(query, texts)
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    out = []
    for rank, i in enumerate(order[: k if k is not None else len(order)]):
        hit = hits[i]
        parts = {
            **hit.contributions,
            "fused": {"score": hit.score, "rank": i + 1},
            "rerank": {"score": scores[i], "rank": rank + 1},
        }
        out.append(replace(hit, score=scores[i], contributions=parts))
    return out
