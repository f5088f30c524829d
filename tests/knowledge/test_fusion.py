"""Fusion rules on hand-made result lists (the search path calls the same ``fuse``)."""

from __future__ import annotations

import pytest

from daytwo.exceptions import InputError
from daytwo.knowledge.fusion import FusionConfig, fuse


def test_default_is_parameter_free_rrf() -> None:
    config = FusionConfig()
    assert (config.method, config.rrf_k) == ("rrf", 60)
    fused = fuse([(1, 9.0), (2, 1.0)], [(2, 0.9), (3, 0.1)], config)
    # key 2 is in both lists (ranks 2 and 1), so it leads; 1 and 3 tie, broken by key
    assert [key for key, _, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_dbsf_scales_each_list_by_its_own_distribution() -> None:
    # BM25: one outlier on top; min-max would squash keys 2..5 towards 0, dbsf does not.
    bm25 = [(1, 40.0), (2, 6.0), (3, 5.5), (4, 5.0), (5, 4.5)]
    dense = [(5, 0.81), (4, 0.80), (3, 0.79), (2, 0.40), (6, 0.39)]
    dbsf = [k for k, _, _ in fuse(bm25, dense, FusionConfig(method="dbsf"))]
    convex = [k for k, _, _ in fuse(bm25, dense, FusionConfig(method="convex", alpha=0.5))]
    # keys strong in both lists beat the lone BM25 outlier; min-max lets the outlier lead
    assert dbsf[:4] == [5, 4, 3, 1]
    assert convex[0] == 1
    scores = {k: s for k, s, _ in fuse(bm25, dense, FusionConfig(method="dbsf"))}
    assert all(0.0 <= s <= 2.0 for s in scores.values())


def test_dbsf_side_with_all_equal_scores_adds_the_same_to_every_key() -> None:
    fused = fuse([(1, 2.0), (2, 2.0)], [(2, 0.9), (1, 0.1)], FusionConfig(method="dbsf"))
    assert [key for key, _, _ in fused] == [2, 1]


def test_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown fusion method") as info:
        FusionConfig(method="max")
    assert "dbsf" in (info.value.hint or "")
