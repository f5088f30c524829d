"""BM25 over what the principal may read.

The keyword indexes (SQLite FTS5, PostgreSQL tsvector) find the chunks holding a query
term and how often (the postings); the statistics BM25 weighs them with are computed
here over the principal's *permitted set* of chunks (its generation, ACL and filters),
never over the whole index: the number of chunks ``N``, the chunks holding each term
``n(t)`` and the average chunk length. So adding private documents, or documents of
another collection or tenant, never changes the scores a principal sees (FTS5's own
``bm25()`` counts every row of the table, private ones and other collections' alike).

Scoring (Robertson/Lucene form, always positive idf)::

    idf(t)   = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
    score(d) = sum_t idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * len(d) / avglen))

Lengths are the chunk's token count as stored by the chunker (``kb_chunks.token_count``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from daytwo.knowledge.keysets import members

__all__ = ["Bm25Params", "Permitted", "Postings", "rank"]

Keys = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class Bm25Params:
    """BM25's term-frequency saturation ``k1`` and length normalisation ``b``."""

    k1: float = 1.2
    b: float = 0.75


@dataclass(frozen=True)
class Permitted:
    """The chunks a principal may see in one generation (sorted pks) and their lengths."""

    keys: Keys
    lengths: npt.NDArray[np.float32]
    complete: bool = False
    """Every chunk of the generation is permitted (no ACL or filter test is needed)."""

    @property
    def average_length(self) -> float:
        """Mean chunk length (1.0 for an empty set)."""
        return float(self.lengths.mean()) if self.lengths.size else 1.0


@dataclass(frozen=True)
class Postings:
    """One query term: the chunk pks holding it and how often each holds it."""

    term: str
    keys: Keys
    tf: npt.NDArray[np.float32]


def rank(
    postings: Iterable[Postings],
    permitted: Permitted,
    k: int,
    params: Bm25Params | None = None,
) -> list[tuple[int, float]]:
    """Top-``k`` (pk, BM25 score) of the permitted chunks, best first (ties by pk)."""
    params = params or Bm25Params()
    allowed = permitted.keys
    total = allowed.size
    if total == 0 or k <= 0:
        return []
    avg = max(permitted.average_length, 1e-6)
    keys_parts: list[Keys] = []
    score_parts: list[npt.NDArray[np.float64]] = []
    for term in postings:
        keep = members(term.keys, allowed)
        keys, tf = term.keys[keep], term.tf[keep].astype(np.float64)
        if keys.size == 0:
            continue
        n = keys.size
        idf = math.log(1.0 + (total - n + 0.5) / (n + 0.5))
        lengths = permitted.lengths[np.searchsorted(allowed, keys)].astype(np.float64)
        norm = params.k1 * (1.0 - params.b + params.b * lengths / avg)
        keys_parts.append(keys)
        score_parts.append(idf * tf * (params.k1 + 1.0) / (tf + norm))
    if not keys_parts:
        return []
    unique, inverse = np.unique(np.concatenate(keys_parts), return_inverse=True)
    scores = np.bincount(inverse, weights=np.concatenate(score_parts), minlength=unique.size)
    count = min(k, unique.size)
    top = np.argpartition(-scores, count - 1)[:count] if count < unique.size else np.arange(count)
    order = top[np.lexsort((unique[top], -scores[top]))]
    return [(int(unique[i]), float(scores[i])) for i in order]
