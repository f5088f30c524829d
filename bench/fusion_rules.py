"""Per-query fusion candidates of ``bench/fusion.py`` (issue 16), none of them shipped.

Each rule is parameter-free: it reads only the two result lists of the query (their
scores and ranks), never a judgement, and turns them into a per-query
:class:`~daytwo.knowledge.fusion.FusionConfig` for the library's ``fuse`` (so the
fusion itself is the one the search path runs), except ``zscore`` and ``rrf_peaked``,
which the library has no setting for and which are computed here.

- ``peaked``: convex min-max with ``alpha = P_dense / (P_bm25 + P_dense)``, where ``P``
  is the z-score of the list's top score over the list (how far the top stands out);
- ``entropy``: the same with ``P = 1 - H(softmax(z)) / log n``;
- ``agree``: the same with ``P`` = how much the other list corroborates this list's top
  10 (mean ``1 / (60 + rank in the other list)``; a key it lacks ranks just below it);
- ``dbsf_peaked``: dbsf with the ``P`` of ``peaked`` as each side's weight;
- ``rrf_agree``: RRF k=60 with the ``P`` of ``agree`` as each side's weight;
- ``rrf_peaked``: RRF with a per-side k, ``60 * mean(P) / P_side`` (a more peaked side
  gets a smaller k, so its top ranks count more);
- ``zscore``: the sum of each list's z-scores (a key missing from a list gets that
  list's lowest z).

What the shapes of the lists say before any judgement (msmarco, 43 queries): BM25's
scores are heavy-tailed (median top-1 z 2.9 vs 2.5 for dense), so the peakedness rules
lean to BM25 (median ``alpha`` 0.46) while dense is the better side there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from daytwo.knowledge.fusion import FusionConfig, fuse

Ranked = list[tuple[int, float]]
Fuser = Callable[[Ranked, Ranked, int], list[int]]

RRF_K = 60
TOP = 10


def _moments(results: Ranked) -> tuple[float, float]:
    n = len(results)
    mean = sum(s for _, s in results) / n
    return mean, math.sqrt(sum((s - mean) ** 2 for _, s in results) / n)


def zscores(results: Ranked) -> dict[int, float]:
    """Each key's z-score over the list (all 0 when the scores are all alike)."""
    if not results:
        return {}
    mean, sd = _moments(results)
    if sd <= 1e-12:
        return {key: 0.0 for key, _ in results}
    return {key: (s - mean) / sd for key, s in results}


def peak(results: Ranked) -> float:
    """The z-score of the top score over its list (0 below two items or when flat)."""
    if len(results) < 2:
        return 0.0
    mean, sd = _moments(results)
    return 0.0 if sd <= 1e-12 else (results[0][1] - mean) / sd


def sharpness(results: Ranked) -> float:
    """``1 - H(softmax(z)) / log n``: 0 for a flat list, towards 1 when one score leads."""
    if len(results) < 2:
        return 0.0
    z = list(zscores(results).values())
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    entropy = -sum(x / total * math.log(x / total) for x in e if x > 0)
    return 1.0 - entropy / math.log(len(z))


def support(side: Ranked, other: Ranked) -> float:
    """How much ``other`` corroborates ``side``'s top 10: mean ``1 / (60 + rank there)``."""
    ranks = {key: r for r, (key, _) in enumerate(other, start=1)}
    top = side[:TOP]
    if not top:
        return 0.0
    return sum(1.0 / (RRF_K + ranks.get(k, len(other) + 1)) for k, _ in top) / len(top)


def _share(bm25: float, dense: float) -> float:
    return 0.5 if bm25 + dense <= 1e-12 else dense / (bm25 + dense)


def _keys(bm25: Ranked, dense: Ranked, config: FusionConfig, limit: int) -> list[int]:
    return [key for key, _, _ in fuse(bm25, dense, config, limit=limit)]


def _convex(weight: Callable[[Ranked, Ranked], float]) -> Fuser:
    def run(bm25: Ranked, dense: Ranked, limit: int) -> list[int]:
        alpha = _share(weight(bm25, dense), weight(dense, bm25))
        return _keys(bm25, dense, FusionConfig(method="convex", alpha=alpha), limit)

    return run


def _weighted(method: str, weight: Callable[[Ranked, Ranked], float]) -> Fuser:
    def run(bm25: Ranked, dense: Ranked, limit: int) -> list[int]:
        config = FusionConfig(
            method=method, bm25_weight=weight(bm25, dense), dense_weight=weight(dense, bm25)
        )
        return _keys(bm25, dense, config, limit)

    return run


def _zscore(bm25: Ranked, dense: Ranked, limit: int) -> list[int]:
    fused: dict[int, float] = {}
    sides = [zscores(bm25), zscores(dense)]
    keys = {key for z in sides for key in z}
    for z in sides:
        floor = min(z.values(), default=0.0)
        for key in keys:
            fused[key] = fused.get(key, 0.0) + z.get(key, floor)
    return [k for k, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _rrf_peaked(bm25: Ranked, dense: Ranked, limit: int) -> list[int]:
    peaks = [peak(bm25), peak(dense)]
    mean = sum(peaks) / 2
    fused: dict[int, float] = {}
    for p, results in zip(peaks, (bm25, dense), strict=True):
        k = max(1.0, RRF_K * mean / p) if p > 0 else float(RRF_K)
        for rank, (key, _score) in enumerate(results, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return [k for k, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _own(measure: Callable[[Ranked], float]) -> Callable[[Ranked, Ranked], float]:
    return lambda side, _other: measure(side)


CANDIDATES: dict[str, Fuser] = {
    "peaked": _convex(_own(peak)),
    "entropy": _convex(_own(sharpness)),
    "agree": _convex(support),
    "dbsf_peaked": _weighted("dbsf", _own(peak)),
    "rrf_agree": _weighted("rrf", support),
    "rrf_peaked": _rrf_peaked,
    "zscore": _zscore,
}
