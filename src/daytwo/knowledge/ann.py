"""ANN vector index: a usearch HNSW file per generation, derived from the database.

- Keys are the ``kb_chunks.id`` primary keys; deletes are usearch tombstones
  (``Index.remove``), compacted when the index is rebuilt.
- A JSON sidecar records the generation ``seq`` the file was saved at; at open the
  index catches up from the database (chunks written and tombstones left after that
  seq), and when the file is missing, corrupt or built for other parameters it is
  rebuilt from the vectors stored in the database.
- Builds and rebuilds hand usearch whole batches (numpy arrays, all cores); vectors are
  read from the database as float32 blobs in keyset pages. The graph stores ``bf16`` by
  default, the fastest at recall@10 >= 0.95 on CPUs with bf16 dot products (AVX512-BF16,
  Arm BF16): on 200k MiniLM-derived vectors (``bench/ann_structured.py``, one run) it
  needs ef 18 where ``f16``/``f32`` need 14 (its 8-bit mantissa costs ~0.006 recall@10
  at the same ef), yet answers in 0.061 ms vs 0.084 (``f16``) and 0.107 (``f32``), at
  917 B/vector (``f32``: 1,685). ``i8`` (533 B/vector) stops at recall@10 0.93 even at
  ef 128: usearch quantises ``x * 127``, a few bits for the ~0.05 components of a unit
  384-d vector. A generation keeps the dtype it was created with, so older ``f16``
  generations stay as they are.
- New graphs use the ``ip`` metric on vectors normalised before they are added and
  searched: the same cosine ranking and scores, with a dot-product kernel instead of the
  cosine one (which also computes both norms at every distance): ~20 % less CPU per
  search. Generations made before keep ``cos`` (their stored params have no ``metric``);
  a reindex (new generation) moves a collection to ``ip``.
- Searches take the set of keys the principal may see and keep searching until ``k``
  permitted keys are found (small permitted sets are searched exactly), so access
  control never shrinks a result list. The filter is never skipped, not even when the
  permitted set is as large as the index: the in-memory index is shared by concurrent
  searches and may already hold chunks written after the snapshot the permitted set
  was read in (a key the set does not name is never returned).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.knowledge.keysets import members
from daytwo.store.tables.knowledge import KbChunk, KbTombstone

with contextlib.suppress(ImportError):  # onnxruntime must load before usearch (else a segfault)
    import onnxruntime  # noqa: F401

from usearch.index import Index

__all__ = ["AnnIndex", "AnnParams", "encode_vector"]

Vector = npt.NDArray[np.float32]
Keys = npt.NDArray[np.uint64]
_READ_BATCH = 20_000  # vectors read (and added) per database round trip in rebuilds


@dataclass(frozen=True)
class AnnParams:
    """HNSW parameters of a generation (stored on it)."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 96
    dtype: str = "bf16"
    exact_below: int = 2048
    metric: str = "ip"

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the generation."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnParams:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        known = set(cls.__dataclass_fields__)
        # Generations made before the metric was recorded are cosine graphs.
        return cls(**{"metric": "cos", **{k: v for k, v in data.items() if k in known}})


class AnnIndex:
    """One generation's HNSW index, its sidecar and its catch-up from the database."""

    def __init__(self, directory: Path, generation: str, dim: int, params: AnnParams) -> None:
        self.directory = directory
        self.generation = generation
        self.dim = dim
        self.params = params
        self.seq = -1  # -1: nothing loaded yet, rebuild from the database
        self._lock = threading.RLock()
        self._index = self._new()
        # usearch's compiled index behind ``Index``, looked up once per graph rather
        # than per search (None: a usearch without it, searched through ``Index``).
        self._compiled: Any = getattr(self._index, "_compiled", None)
        # Vectors of the last permitted-key array searched exactly (the search cache hands
        # out the same array object per principal and seq); dropped on every write.
        self._exact_keys: npt.NDArray[np.uint64] | None = None
        self._exact_cache: tuple[npt.NDArray[np.uint64], Vector] | None = None

    @property
    def path(self) -> Path:
        """The usearch file."""
        return self.directory / "index.usearch"

    @property
    def sidecar(self) -> Path:
        """The JSON file with the seq the index was saved at."""
        return self.directory / "index.json"

    def __len__(self) -> int:
        return len(self._index)

    def _new(self) -> Index:
        return Index(
            ndim=self.dim,
            metric=self.params.metric,
            dtype=self.params.dtype,
            connectivity=self.params.connectivity,
            expansion_add=self.params.expansion_add,
            expansion_search=self.params.expansion_search,
        )

    # -- files ---------------------------------------------------------------
    def load(self) -> bool:
        """Load the saved file when it matches this generation; False when absent/unusable."""
        try:
            meta = json.loads(self.sidecar.read_text(encoding="utf-8"))
            if (
                meta.get("generation") != self.generation
                or meta.get("dim") != self.dim
                or AnnParams.from_dict(meta.get("params")) != self.params
            ):
                return False
            index = self._new()
            index.load(str(self.path))
            if len(index) != int(meta.get("count", -1)):
                return False
        except (OSError, ValueError, RuntimeError, TypeError, AttributeError):
            return False
        with self._lock:
            self._index = index
            self._compiled = getattr(index, "_compiled", None)
            self.seq = int(meta["seq"])
        return True

    def save(self) -> None:
        """Write the index and its sidecar atomically (tmp file + rename)."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".usearch.tmp")
            self._index.save(str(tmp))
            os.replace(tmp, self.path)
            meta = {
                "generation": self.generation,
                "dim": self.dim,
                "params": self.params.to_dict(),
                "seq": self.seq,
                "count": len(self._index),
            }
            tmp_meta = self.sidecar.with_suffix(".json.tmp")
            tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp_meta, self.sidecar)

    # -- writes --------------------------------------------------------------
    def apply(
        self,
        removed: Iterable[int],
        keys: Sequence[int] | Keys,
        vectors: Vector | None,
        seq: int,
        *,
        threads: int = 0,
    ) -> None:
        """Remove tombstoned keys, (re)add vectors, and remember the seq reached.

        ``vectors`` is one ``(len(keys), dim)`` array added in a single usearch call on
        ``threads`` cores (0: all).
        """
        with self._lock:
            self._exact_keys, self._exact_cache = None, None
            gone = np.fromiter(removed, dtype=np.uint64)
            if gone.size:
                self._index.remove(gone)
            arr = np.asarray(keys, dtype=np.uint64).reshape(-1)
            if arr.size and vectors is not None:
                if len(self._index):
                    present = np.asarray(self._index.contains(arr), dtype=bool).reshape(-1)
                    if present.any():
                        self._index.remove(arr[present])
                self._index.add(arr, self._prepare(vectors), threads=threads)
            self.seq = max(self.seq, seq)

    def set_expansion_search(self, value: int) -> None:
        """Change the search beam width (a runtime knob: the graph stays as built)."""
        if value < 1:
            raise ValueError("expansion_search must be >= 1")
        with self._lock:
            self.params = replace(self.params, expansion_search=value)
            self._index.expansion_search = value  # type: ignore[misc]  # a setter at runtime

    def rebuild(self, session: Session, seq: int) -> None:
        """Rebuild from the vectors stored in the database (compacts tombstones).

        The new graph is built aside and swapped in at the end, so searches on this
        object keep answering from the old one meanwhile.
        """
        fresh = AnnIndex(self.directory, self.generation, self.dim, self.params)
        last = 0
        while True:  # keyset pages of float32 blobs, each added in one threaded call
            rows = session.execute(
                sa.select(KbChunk.id, KbChunk.vector)
                .where(
                    KbChunk.generation == self.generation,
                    KbChunk.vector.is_not(None),
                    KbChunk.id > last,
                )
                .order_by(KbChunk.id)
                .limit(_READ_BATCH)
            ).all()
            if not rows:
                break
            last = int(rows[-1][0])
            keys = np.fromiter((int(r[0]) for r in rows), dtype=np.uint64, count=len(rows))
            fresh.apply((), keys, _decode([bytes(r[1] or b"") for r in rows], self.dim), -1)
        with self._lock:
            self._index = fresh._index
            self._compiled = fresh._compiled
            self._exact_keys, self._exact_cache = None, None
            self.seq = seq

    def catch_up(self, session: Session, target_seq: int) -> int:
        """Apply the database changes after ``self.seq`` up to ``target_seq``; return how many."""
        with self._lock:
            if self.seq < 0:
                self.rebuild(session, target_seq)
                return len(self._index)
            if self.seq >= target_seq:
                return 0
            since = self.seq
            removed = [
                int(k)
                for k in session.scalars(
                    sa.select(KbTombstone.chunk_pk).where(
                        KbTombstone.generation == self.generation,
                        KbTombstone.seq > since,
                        KbTombstone.seq <= target_seq,
                    )
                )
            ]
            rows = session.execute(
                sa.select(KbChunk.id, KbChunk.vector).where(
                    KbChunk.generation == self.generation,
                    KbChunk.seq > since,
                    KbChunk.seq <= target_seq,
                    KbChunk.vector.is_not(None),
                )
            ).all()
            keys = np.fromiter((int(r[0]) for r in rows), dtype=np.uint64, count=len(rows))
            vectors = _decode([bytes(r[1] or b"") for r in rows], self.dim) if rows else None
            self.apply(removed, keys, vectors, target_seq)
            return len(removed) + len(rows)

    # -- reads ---------------------------------------------------------------
    def search(
        self, query: Vector, k: int, allowed: npt.NDArray[np.uint64] | None = None
    ) -> list[tuple[int, float]]:
        """Top-``k`` (key, cosine similarity), restricted to ``allowed`` keys when given."""
        with self._lock:
            size = len(self._index)
            if size == 0 or k <= 0 or (allowed is not None and allowed.size == 0):
                return []
            q = query
            if q.dtype != np.float32 or q.ndim != 1:
                q = q.astype(np.float32).reshape(-1)
            if allowed is not None and (
                allowed.size <= self.params.exact_below or allowed.size * 20 < size
            ):
                return self._exact(q, k, allowed)
            # An ``ip`` graph holds unit vectors: the query's length scales every
            # similarity alike (the ranking is the cosine's), so it is divided out of
            # the k results rather than normalising the query first (the numpy calls of
            # that were a tenth of a small search). A ``cos`` graph normalises itself.
            scale = 1.0
            if self.params.metric == "ip":
                norm = math.sqrt(q.dot(q))  # ndarray.dot: a third of ``float(q @ q)``'s cost
                scale = 1.0 / norm if norm > 0.0 else 1.0
            count = k if allowed is None else math.ceil(k * size / allowed.size * 1.5) + k
            while True:
                count = min(count, size)
                # Small indexes are searched exactly: cheap, and a graph over sparse or
                # tied vectors can leave nodes unreachable after a rebuild.
                exact = count >= size or size <= self.params.exact_below
                keys, dists = self._search_one(q, count, exact)
                if allowed is not None:
                    keep = members(keys, allowed)
                    keys, dists = keys[keep], dists[keep]
                if len(keys) >= k or count >= size:
                    if len(keys) > k:  # only a filtered search asks for more than k
                        keys, dists = keys[:k], dists[:k]
                    # One tolist() per array and the pairs built in one comprehension:
                    # no numpy scalar per element, no temporary arrays or lists
                    # (a third less than a list of sims zipped with the keys).
                    return [
                        (key, (1.0 - d) * scale)
                        for key, d in zip(keys.tolist(), dists.tolist(), strict=True)
                    ]
                count *= 4

    def _prepare(self, vectors: Vector) -> Vector:
        """Float32 rows as the graph takes them: unit length for an ``ip`` graph."""
        rows = vectors.astype(np.float32, copy=False)
        if self.params.metric != "ip":
            return rows
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0  # a zero vector stays zero (similarity 0 to all)
        unit: Vector = (rows / norms).astype(np.float32, copy=False)
        return unit

    def _search_one(
        self, q: Vector, count: int, exact: bool
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """One query's (keys, distances), best first.

        Straight to usearch's compiled ``search_many`` when it is there: the Python
        ``Index.search`` around it (argument checks, a ``BatchMatches`` and a
        ``Matches`` object per call) costs ~10 % of a whole search at small ``ef``.
        One query: no worker pool (threads=0 costs ~0.1 ms per call to start one).

        Not avoidable from here: ``search_many`` clamps ``threads`` to
        ``std::thread::hardware_concurrency()`` on every call, which glibc answers by
        reading ``/sys/devices/system/cpu/online`` (three system calls): ~7 µs per search
        on the 2-core bench VM, a tenth of a 200k-vector search at ef 16 (measured with
        ``get_nprocs`` cached by an ``LD_PRELOAD`` shim; usearch 2.26). A fix belongs
        upstream (clamp only when ``threads == 0``, or cache the count).
        """
        compiled = self._compiled
        if compiled is None:  # pragma: no cover - a usearch without the compiled handle
            matches = self._index.search(q, count, exact=exact, threads=1)
            return (
                np.asarray(matches.keys, dtype=np.uint64),
                np.asarray(matches.distances, dtype=np.float32),
            )
        # Positional (queries, count, exact, threads): pybind11 matches keywords by
        # name on every call; progress and dtype keep their defaults (none, the array's).
        found = compiled.search_many(q.reshape(1, -1), count, exact, 1)
        n = found[2].item()
        keys: npt.NDArray[np.uint64] = found[0][0, :n]  # uint64 and float32 already
        dists: npt.NDArray[np.float32] = found[1][0, :n]
        return keys, dists

    def _exact(self, q: Vector, k: int, allowed: npt.NDArray[np.uint64]) -> list[tuple[int, float]]:
        if self._exact_cache is not None and self._exact_keys is allowed:
            keys, unit = self._exact_cache
        else:
            present = np.asarray(self._index.contains(allowed), dtype=bool).reshape(-1)
            keys = allowed[present]
            if keys.size == 0:
                return []
            vectors = np.asarray(self._index.get(keys), dtype=np.float32)
            vectors = vectors.reshape(keys.size, self.dim)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0.0] = 1.0
            unit = (vectors / norms).astype(np.float32)
            self._exact_keys, self._exact_cache = allowed, (keys, unit)
        if keys.size == 0:
            return []
        scores = (unit @ q) / max(float(np.linalg.norm(q)), 1e-12)
        top = np.argsort(-scores)[:k]
        return [(int(keys[i]), float(scores[i])) for i in top]


def encode_vector(vector: Vector) -> bytes:
    """A vector as the float32 blob stored in ``kb_chunks.vector``."""
    return np.asarray(vector, dtype="<f4").tobytes()


def _decode(blobs: list[bytes], dim: int) -> Vector:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)
