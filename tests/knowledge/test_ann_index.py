"""AnnIndex on its own: the graph search path answers plain Python (key, cosine) pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daytwo.knowledge.ann import AnnIndex, AnnParams


def test_graph_search_returns_python_pairs_with_cosines(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    index = AnnIndex(tmp_path, "g", 32, AnnParams(exact_below=0, expansion_search=64))
    index.apply((), np.arange(1, 301, dtype=np.uint64), vectors, 1)
    query = vectors[41] + 0.05 * rng.standard_normal(32).astype(np.float32)

    hits = index.search(query, 5)

    assert len(hits) == 5
    assert hits[0][0] == 42  # keys start at 1
    assert all(type(key) is int and type(sim) is float for key, sim in hits)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = unit @ (query / np.linalg.norm(query))
    for key, sim in hits:  # bf16 storage: cosines to ~1e-2
        assert abs(sim - float(expected[key - 1])) < 2e-2
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
