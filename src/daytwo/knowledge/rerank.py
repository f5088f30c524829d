"""The optional reranking stage: a cross-encoder rescoring the first hits of a search.

No registry package ships cross-encoder weights that run offline (the ms-marco MiniLM
rerankers on PyPI, e.g. FlashRank, download their ONNX files at run time, which daytwo
never does), so daytwo ships the interface and one real client: :class:`TeiReranker`
speaks the ``POST /rerank`` protocol of Hugging Face Text Embeddings Inference (and of
the servers that copy it), so a cross-encoder you serve yourself (for example
``cross-encoder/ms-marco-MiniLM-L-6-v2`` under TEI) plugs in by URL. The scripted
double :class:`daytwo.testing.rerank_server.ScriptedRerankServer` speaks the same
protocol for tests. Any object with ``name`` and ``score(query, texts)`` is a reranker.

The CLI and the REST API pick a reranker by name among those the operator configured
(the ``rerankers`` setting: name -> URL, resolved by :meth:`Indexes.reranker
<daytwo.knowledge.indexes.Indexes.reranker>`); a caller never gives a URL, so the
server calls no address a tenant chose. :func:`daytwo.knowledge.search.rerank_hits`
rescores the hits a search returned (the principal's, after the ACL) and reorders
them; each hit keeps its fused score under ``contributions["fused"]`` and gets
``contributions["rerank"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from daytwo.exceptions import TransportError

__all__ = ["Reranker", "TeiReranker"]


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in the order given."""
        ...


class TeiReranker:
    """A cross-encoder behind the Text Embeddings Inference ``/rerank`` protocol.

    ``name``: how errors name it (default ``tei:<url>``); a configured reranker is named
    by its setting key, so that its URL, the operator's, is not shown to callers.
    ``max_batch``: passages per request; TEI refuses more than its ``--max-client-batch-size``
    (32 by default) with a 422, so a deeper rerank is sent in several requests."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout: float = 10.0,
        truncate: bool = True,
        max_batch: int = 32,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = name or f"tei:{self.url}"
        self._named = name is not None
        self._truncate = truncate
        self._max_batch = max(1, max_batch)
        self._client = httpx.Client(timeout=timeout)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = [0.0] * len(texts)
        seen: set[int] = set()
        try:
            for start in range(0, len(texts), self._max_batch):
                chunk = list(texts[start : start + self._max_batch])
                body = {
                    "query": query,
                    "texts": chunk,
                    "raw_scores": True,
                    "truncate": self._truncate,
                }
                response = self._client.post(f"{self.url}/rerank", json=body)
                response.raise_for_status()
                for item in response.json():
                    index = int(item["index"])
                    if not 0 <= index < len(chunk):
                        raise IndexError(index)
                    scores[start + index] = float(item["score"])
                    seen.add(start + index)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise TransportError(
                f"reranker {self.name} failed: {self._reason(exc)}",
                hint="check that the /rerank server is up and speaks the TEI protocol",
            ) from exc
        if len(seen) != len(texts):
            raise TransportError(
                f"reranker {self.name} scored {len(seen)} of {len(texts)} passages",
                hint="check the server's max batch size",
            )
        return scores

    def _reason(self, exc: Exception) -> str:
        if not self._named:
            return str(exc)
        if isinstance(exc, httpx.HTTPStatusError):  # httpx's text names the URL
            return f"HTTP {exc.response.status_code}"
        if isinstance(exc, httpx.TimeoutException):
            return "timed out"
        if isinstance(exc, httpx.TransportError):
            return "could not be reached"
        return "its answer is not a TEI /rerank answer"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
