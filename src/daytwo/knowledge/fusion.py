"""Hybrid fusion of the keyword and vector result lists.

- ``rrf``: reciprocal-rank fusion, ``sum_i w_i / (k + rank_i)``.
- ``convex``: a convex combination ``alpha * dense + (1 - alpha) * bm25`` of scores
  min-max normalised within each list (a key missing from a list contributes 0).

The method and its parameters are configured per collection (``kb_collections.fusion``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from daytwo.exceptions import InputError

__all__ = ["Contribution", "Fused", "FusionConfig", "fuse"]

Ranked = list[tuple[int, float]]
Contribution = dict[str, float]
Fused = tuple[int, float, dict[str, Contribution]]


@dataclass(frozen=True)
class FusionConfig:
    """How a collection fuses its keyword and vector results."""

    method: str = "convex"
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    alpha: float = 0.7
    depth: int = 100

    def __post_init__(self) -> None:
        if self.method not in {"rrf", "convex"}:
            raise InputError(f"unknown fusion method {self.method!r}", hint="use 'rrf' or 'convex'")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"fusion alpha {self.alpha} is outside [0, 1]", hint="e.g. 0.5")
        if self.rrf_k < 1 or self.depth < 1:
            raise InputError("fusion rrf_k and depth must be >= 1", hint="e.g. rrf_k=60")

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the collection."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FusionConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(
                f"unknown fusion setting {sorted(unknown)[0]!r}",
                hint=f"known: {', '.join(cls.__dataclass_fields__)}",
            )
        return cls(**data)


def _normalised(results: Ranked) -> dict[int, float]:
    if not results:
        return {}
    scores = [s for _, s in results]
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return {key: 1.0 for key, _ in results}
    span = high - low
    return {key: (s - low) / span for key, s in results}


def fuse(
    bm25: Ranked, dense: Ranked, config: FusionConfig, limit: int | None = None
) -> list[Fused]:
    """Fused (key, score, contributions), best first; ties broken by key for stability.

    ``limit``: only the best ``limit`` (the contributions of the rest are not built).
    """
    fused: dict[int, float] = {}
    if config.method == "rrf":
        for weight, results in ((config.bm25_weight, bm25), (config.dense_weight, dense)):
            for rank, (key, _score) in enumerate(results, start=1):
                fused[key] = fused.get(key, 0.0) + weight / (config.rrf_k + rank)
    else:
        alpha = config.alpha
        for weight, norm in ((1.0 - alpha, _normalised(bm25)), (alpha, _normalised(dense))):
            for key, value in norm.items():
                fused[key] = fused.get(key, 0.0) + weight * value
    items = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
    if limit is not None:
        items = items[:limit]
    wanted = {key for key, _ in items}
    contributions: dict[int, dict[str, Contribution]] = {key: {} for key in wanted}
    for name, results in (("bm25", bm25), ("dense", dense)):
        for rank, (key, score) in enumerate(results, start=1):
            if key in wanted:
                contributions[key][name] = {"rank": float(rank), "score": score}
    return [(key, score, contributions[key]) for key, score in items]
