"""Near-duplicate detection of case inputs by embedding similarity.

Any ``Embedder`` (``embed(texts) -> vectors``) works; the knowledge layer's
MiniLM embedder is used when it is installed (:func:`default_embedder`),
otherwise a hashed character-trigram embedder that needs no model file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from daytwo.evals.metrics import normalize_text

__all__ = ["DedupIndex", "Embedder", "NgramEmbedder", "default_embedder", "near_duplicates"]


class Embedder(Protocol):
    """Turns texts into vectors (any dimension; cosine similarity is used)."""

    def embed(self, texts: Sequence[str]) -> Any:
        """One vector per text (a 2-D array or a list of lists)."""
        ...


class NgramEmbedder:
    """Hashed character trigrams and words of the normalised text, L2-normalised."""

    name = "ngram-hash-512"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            norm = f" {normalize_text(text)} "
            grams = [norm[i : i + 3] for i in range(max(1, len(norm) - 2))] + norm.split()
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
        lengths = np.linalg.norm(out, axis=1, keepdims=True)
        lengths[lengths == 0] = 1.0
        return (out / lengths).tolist()  # type: ignore[no-any-return]


def default_embedder(name: str = "minilm-l6-int8") -> Embedder:
    """The knowledge layer's embedder ``name`` when it loads, else :class:`NgramEmbedder`."""
    try:
        from daytwo.knowledge.embedders import get_embedder

        emb: Embedder = get_embedder(name)
        emb.embed(["probe"])  # loads the model now, so a missing file falls back here
        return emb
    except Exception:  # knowledge layer absent, or its model not installed
        return NgramEmbedder()


def near_duplicates(
    candidates: Sequence[str],
    existing: Sequence[str],
    *,
    embedder: Embedder | None = None,
    threshold: float = 0.9,
) -> list[tuple[int, float, str | None]]:
    """For each candidate: (index of the most similar earlier text or -1, similarity, that text).

    Candidates are compared with ``existing`` and with the candidates before
    them, so duplicates inside one batch are caught too. Returned entries with
    similarity >= ``threshold`` are duplicates.
    """
    if not candidates:
        return []
    emb = embedder or NgramEmbedder()
    pool = list(existing) + list(candidates)
    vecs = np.asarray(emb.embed(pool), dtype=np.float64)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    vecs = vecs / norms
    out: list[tuple[int, float, str | None]] = []
    n_old = len(existing)
    for i in range(len(candidates)):
        row = n_old + i
        if row == 0:
            out.append((-1, 0.0, None))
            continue
        sims = vecs[:row] @ vecs[row]
        j = int(np.argmax(sims))
        out.append((j, float(sims[j]), pool[j]))
    return out


class DedupIndex:
    """Texts seen so far, each embedded once; new texts are checked against them, then added."""

    def __init__(self, texts: Sequence[str], *, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or NgramEmbedder()
        self.texts: list[str] = []
        self._vecs = np.zeros((0, 0), dtype=np.float64)
        self.add(texts)

    def _embed(self, texts: Sequence[str]) -> Any:
        vecs = np.asarray(self.embedder.embed(list(texts)), dtype=np.float64)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vecs / norms

    def add(self, texts: Sequence[str]) -> None:
        """Remember ``texts``."""
        if not texts:
            return
        vecs = self._embed(texts)
        self._vecs = vecs if not self.texts else np.vstack([self._vecs, vecs])
        self.texts.extend(texts)

    def nearest(self, text: str, *, exclude: Sequence[str] = ()) -> tuple[float, str | None]:
        """(cosine similarity, text) of the most similar remembered text not in ``exclude``."""
        if not self.texts:
            return 0.0, None
        sims = self._vecs @ self._embed([text])[0]
        skip = set(exclude)
        best, best_text = 0.0, None
        for i in np.argsort(-sims):
            if self.texts[int(i)] not in skip:
                best, best_text = float(sims[int(i)]), self.texts[int(i)]
                break
        return best, best_text
