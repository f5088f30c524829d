"""The index room: what every part of the knowledge layer reads and writes through.

:class:`Indexes` holds the store, the embedders (resolved by a generation's recorded
name), the collections and their live generations, the ANN index handle of each
generation (opened, caught up from the database, saved), the cache of permitted sets
and the rerankers the operator configured (by name).
The function modules (ingest, search, generations, erase, maintenance, shadow reads)
take an :class:`Indexes`; :class:`daytwo.knowledge.KnowledgeBase` is the facade on top
of it (documents, search, fusion settings), so no module needs the facade.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.ann import AnnIndex, AnnParams
from daytwo.knowledge.bm25 import Permitted
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from daytwo.knowledge.fts import ensure_fts
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.rerank import Reranker, TeiReranker
from daytwo.store import Store, new_id, utcnow
from daytwo.store.analyzers import DEFAULT_ANALYZER, check_analyzer
from daytwo.store.tables.knowledge import KbChunk, KbCollection, KbDocument, KbGeneration

__all__ = ["LIVE_STATES", "AllowedCache", "Indexes"]

LIVE_STATES = ("active", "shadow")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class AllowedCache:
    """Small LRU of permitted sets (keyed by generation seq, ACL entries and filters),
    plus the immutable parts of generations and parsed fusion configs."""

    def __init__(self, size: int = 64) -> None:
        self._data: OrderedDict[tuple[Any, ...], Permitted] = OrderedDict()
        self._size = size
        self.generations: dict[str, KbGeneration] = {}
        self._fusion: dict[str, FusionConfig] = {}

    def fusion(self, data: dict[str, Any] | None) -> FusionConfig:
        """The parsed fusion config of a collection row (parsed once per distinct value)."""
        key = json.dumps(data or {}, sort_keys=True)
        config = self._fusion.get(key)
        if config is None:
            config = self._fusion[key] = FusionConfig.from_dict(data)
        return config

    def get(self, key: tuple[Any, ...]) -> Permitted | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: Permitted) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)


class Indexes:
    """Embedders, collections and live generations, ANN handles, catch-up, permitted sets."""

    def __init__(
        self,
        store: Store,
        data_dir: Path | str,
        embedder: Embedder | str | None = None,
        *,
        chunking: ChunkingConfig | None = None,
        ann_params: AnnParams | None = None,
        rerankers: Mapping[str, Reranker | str] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        if isinstance(embedder, str) or embedder is None:
            self._default_embedder_name = embedder or DEFAULT_EMBEDDER
            self._embedders: dict[str, Embedder] = {}
        else:
            self._default_embedder_name = embedder.name
            self._embedders = {embedder.name: embedder}
        self.chunking = chunking or ChunkingConfig()
        self.ann_params = ann_params or AnnParams()
        self.allowed_cache = AllowedCache()
        self._indexes: dict[str, AnnIndex] = {}
        self._lock = threading.RLock()
        self._rerankers: dict[str, Reranker | str] = dict(rerankers or {})
        self.rows_since_statistics_check = 0
        """Chunks written since the write path last looked at the planner statistics
        (:func:`daytwo.knowledge.ingest.analyze_grown_tables`)."""
        ensure_fts(store.engine)

    def reranker(self, name: str) -> Reranker:
        """The configured reranker ``name`` (a URL given in the settings is a TEI
        ``/rerank`` server, named by its key); an unknown name is an ``InputError``."""
        with self._lock:
            found = self._rerankers.get(name)
            if found is None:
                known = ", ".join(sorted(self._rerankers)) or "none is configured"
                raise InputError(
                    f"unknown reranker {name!r}",
                    hint=f"use one the operator configured (setting 'rerankers'): {known}",
                )
            if isinstance(found, str):
                found = self._rerankers[name] = TeiReranker(found, name=name)
            return found

    # -- collections and generations ------------------------------------------
    def embedder_for(self, gen: KbGeneration) -> Embedder:
        """The embedder of a generation (resolved by its recorded name)."""
        with self._lock:
            if gen.embedder not in self._embedders:
                self._embedders[gen.embedder] = get_embedder(gen.embedder)
            return self._embedders[gen.embedder]

    def _default_embedder(self) -> Embedder:
        name = self._default_embedder_name
        with self._lock:
            if name not in self._embedders:
                self._embedders[name] = get_embedder(name)
            return self._embedders[name]

    def ensure_collection(self, collection: str, analyzer: str | None = None) -> KbGeneration:
        """Create the collection and its first (active) generation if missing, its keyword
        index analyzing text with ``analyzer`` (:mod:`daytwo.store.analyzers`; ``english``
        when None). For an existing collection ``analyzer`` must be its own, or None
        (InputError: changing it is a re-index, :func:`daytwo.knowledge.generations.
        start_migration`)."""
        if not _NAME.match(collection):
            raise InputError(
                f"collection name {collection!r} is not valid",
                hint="use letters, digits, '_', '.', '-' (at most 200 characters)",
            )
        wanted = None if analyzer is None else check_analyzer(analyzer)
        with self.store.session() as session:
            row = session.get(KbCollection, collection)
            if row is not None and row.active_generation:
                gen = session.get(KbGeneration, row.active_generation)
                if gen is not None:
                    return _same_analyzer(gen, wanted)
        embedder = self._default_embedder()
        gen = KbGeneration(
            id=f"g{new_id()[:15]}",
            collection=collection,
            embedder=embedder.name,
            embedder_version=embedder.version,
            dim=embedder.dim,
            chunking=self.chunking.to_dict(),
            ann_params=self.ann_params.to_dict(),
            analyzer=wanted or DEFAULT_ANALYZER,
            state="active",
            seq=0,
            created_at=utcnow(),
        )
        with self.store.session(write=True) as session:
            row = session.get(KbCollection, collection, with_for_update=True)
            if row is not None and row.active_generation:
                existing = session.get(KbGeneration, row.active_generation)
                if existing is not None:
                    return _same_analyzer(existing, wanted)
            if row is None:
                row = KbCollection(
                    name=collection, tenant="default", fusion={}, created_at=utcnow()
                )
                session.add(row)
            session.add(gen)
            session.flush()
            row.active_generation = gen.id
        return gen

    def active_generation(self, collection: str) -> KbGeneration:
        """The generation searches read (NotFoundError for an unknown collection)."""
        with self.store.session() as session:
            row = session.get(KbCollection, collection)
            gen = (
                session.get(KbGeneration, row.active_generation)
                if row and row.active_generation
                else None
            )
        if gen is None:
            raise NotFoundError(
                f"collection {collection!r} does not exist",
                hint="ingest into it first: daytwo kb ingest PATH --collection " + collection,
            )
        return gen

    def live_generations(
        self, collection: str, session: Session | None = None
    ) -> list[KbGeneration]:
        """Every generation writes must reach: the active one and any shadow ones (read in
        ``session`` when given: a write transaction that must see the set it writes to)."""
        self.ensure_collection(collection)
        query = (
            sa.select(KbGeneration)
            .where(KbGeneration.collection == collection, KbGeneration.state.in_(LIVE_STATES))
            .order_by(KbGeneration.created_at)
        )
        if session is not None:
            return list(session.scalars(query))
        with self.store.session() as own:
            return list(own.scalars(query))

    # -- ANN indexes --------------------------------------------------------------
    def index_dir(self, gen: KbGeneration) -> Path:
        """Where a generation's ANN index file lives."""
        return self.data_dir / "kb" / gen.collection / gen.id

    def index_for(self, gen: KbGeneration) -> AnnIndex:
        """The generation's ANN index, opened (and caught up) on first use."""
        with self._lock:
            index = self._indexes.get(gen.id)
            if index is None:
                index = AnnIndex(
                    self.index_dir(gen), gen.id, gen.dim, AnnParams.from_dict(gen.ann_params)
                )
                index.load()
                self._indexes[gen.id] = index
                with self.store.session() as session:
                    self.catch_up(session, gen.id)
            return index

    def catch_up(self, session: Session, generation: str, seq: int | None = None) -> int:
        """Bring the in-memory index of ``generation`` to the database seq (``seq`` when the
        caller read it already in this transaction); return that seq."""
        if seq is None:
            seq = int(
                session.scalar(sa.select(KbGeneration.seq).where(KbGeneration.id == generation))
                or 0
            )
        index = self._indexes.get(generation)
        if index is not None and index.seq != seq:
            index.catch_up(session, seq)
        return seq

    def refresh_index(self, gen: KbGeneration) -> None:
        """Catch the generation's index up after a write (read-your-writes)."""
        with self._lock:
            opened = gen.id in self._indexes
            self.index_for(gen)  # opening catches up already
            if opened:
                with self.store.session() as session:
                    self.catch_up(session, gen.id)

    def forget_index(self, generation: str) -> None:
        """Drop a generation's in-memory index (after it was pruned or replaced)."""
        with self._lock:
            self._indexes.pop(generation, None)

    def replace_index(self, generation: str, index: AnnIndex) -> None:
        """Swap in a rebuilt index (online vacuum); searches in flight keep the old one."""
        with self._lock:
            self._indexes[generation] = index

    def save_indexes(self, collection: str | None = None) -> None:
        """Persist the open ANN indexes (with their seq sidecars)."""
        with self._lock:
            for index in self._indexes.values():
                gen_collection = index.directory.parent.name
                if collection is None or gen_collection == collection:
                    index.save()

    def rebuild_index(self, collection: str) -> int:
        """Rebuild the active generation's ANN index from the database; return its size."""
        gen = self.active_generation(collection)
        index = self.index_for(gen)
        with self.store.session() as session:
            seq = self.catch_up(session, gen.id)
            index.rebuild(session, seq)
        index.save()
        return len(index)

    def stats(self, collection: str | None = None) -> dict[str, Any]:
        """Counts per collection and generation, and the state of the ANN indexes."""
        with self.store.session() as session:
            q = sa.select(KbCollection).order_by(KbCollection.name)
            if collection is not None:
                q = q.where(KbCollection.name == collection)
            rows = list(session.scalars(q))
            if collection is not None and not rows:
                raise NotFoundError(
                    f"collection {collection!r} does not exist", hint="see daytwo kb stats"
                )
            out: dict[str, Any] = {"collections": []}
            for row in rows:
                docs = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(KbDocument)
                    .where(KbDocument.collection == row.name)
                )
                sources = session.scalar(
                    sa.select(sa.func.count(sa.distinct(KbDocument.source))).where(
                        KbDocument.collection == row.name
                    )
                )
                private = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(KbDocument)
                    .where(KbDocument.collection == row.name, KbDocument.private.is_(True))
                )
                gens = []
                for gen in session.scalars(
                    sa.select(KbGeneration)
                    .where(KbGeneration.collection == row.name)
                    .order_by(KbGeneration.created_at)
                ):
                    chunks = session.scalar(
                        sa.select(sa.func.count())
                        .select_from(KbChunk)
                        .where(KbChunk.generation == gen.id)
                    )
                    index = self._indexes.get(gen.id)
                    gens.append(
                        {
                            "id": gen.id,
                            "state": gen.state,
                            "embedder": gen.embedder,
                            "embedder_version": gen.embedder_version,
                            "dim": gen.dim,
                            "chunking": gen.chunking,
                            "analyzer": gen.analyzer,
                            "ann": gen.ann_params,
                            "seq": gen.seq,
                            "chunks": chunks,
                            "index_loaded": index is not None,
                            "index_seq": index.seq if index is not None else None,
                            "index_file": str(self.index_dir(gen) / "index.usearch"),
                        }
                    )
                out["collections"].append(
                    {
                        "name": row.name,
                        "tenant": row.tenant,
                        "documents": docs,
                        "private_documents": private,
                        "sources": sources,
                        "active_generation": row.active_generation,
                        "fusion": FusionConfig.from_dict(row.fusion).to_dict(),
                        "generations": gens,
                    }
                )
        return out


def _same_analyzer(gen: KbGeneration, wanted: str | None) -> KbGeneration:
    if wanted is not None and wanted != gen.analyzer:
        raise InputError(
            f"collection {gen.collection!r} analyzes text as {gen.analyzer!r}, not {wanted!r}",
            hint=f"re-index it: daytwo kb migrate -c {gen.collection} --analyzer {wanted}",
        )
    return gen
