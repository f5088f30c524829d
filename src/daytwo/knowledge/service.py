"""``KnowledgeBase``: the facade the runtime, the server and the CLI use.

Documents (upsert, delete, read, sync from sources), search and fusion settings, on top
of the index room (:class:`daytwo.knowledge.indexes.Indexes`: the collections, their
index generations, the ANN index of each generation under
``<data_dir>/kb/<collection>/<generation>/``, and the embedders).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.acl import default_acl
from daytwo.knowledge.bulk import parse_document
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.indexes import LIVE_STATES, Indexes
from daytwo.knowledge.ingest import (
    IngestReport,
    apply_writes,
    ingest_source,
)
from daytwo.knowledge.rerank import Reranker
from daytwo.knowledge.search import Hit, Hits, SearchRequest, SearchTimings, rerank_hits
from daytwo.knowledge.shadow_reads import routed_search
from daytwo.knowledge.sources import open_source
from daytwo.store.tables.knowledge import KbCollection, KbDocument

__all__ = ["LIVE_STATES", "Document", "KnowledgeBase"]

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


@dataclass(frozen=True)
class Document:
    """A stored document."""

    collection: str
    doc_id: str
    title: str
    text: str
    source: str
    metadata: dict[str, Any]
    acl: list[str]
    private: bool
    tenant: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


class KnowledgeBase(Indexes):
    """Documents in collections, searchable by keyword, meaning or both, under ACLs."""

    def fusion_config(self, collection: str) -> FusionConfig:
        """The collection's fusion settings."""
        with self.store.session() as session:
            row = session.get(KbCollection, collection)
            return FusionConfig.from_dict(row.fusion if row else None)

    def set_fusion(self, collection: str, **settings: Any) -> FusionConfig:
        """Change the collection's fusion (``method='rrf'|'dbsf'|'convex'``, ``alpha``, ...)."""
        self.ensure_collection(collection)
        config = FusionConfig.from_dict({**self.fusion_config(collection).to_dict(), **settings})
        with self.store.session(write=True) as session:
            row = session.get(KbCollection, collection)
            assert row is not None
            row.fusion = config.to_dict()
        return config

    # -- documents ----------------------------------------------------------------
    def ingest_path(
        self,
        path: str | Path,
        collection: str,
        acl: Sequence[str] | None = None,
        private: bool = False,
        progress: Callable[[int, int], None] | None = None,
        *,
        source_name: str | None = None,
        ticket_format: str | None = None,
        read_progress: Callable[[str, float, float], None] | None = None,
        analyzer: str | None = None,
        **sql_options: Any,
    ) -> IngestReport:
        """Sync a folder, file or SQLAlchemy URL into ``collection`` (incremental).

        ``source_name`` names the source (default: derived from the path or URL); a sync
        changes only the documents of its source. ``ticket_format`` (zendesk, jira,
        github) reads JSONL/CSV files as that ticket export (default: detected).
        ``analyzer`` is the keyword analyzer of a new collection (``english``, ``simple``
        or a language, :mod:`daytwo.store.analyzers`); for an existing one it must be
        its own (:meth:`ensure_collection`), checked before anything is read or written.
        """
        if analyzer is not None:
            self.ensure_collection(collection, analyzer=analyzer)
        source = open_source(str(path), ticket_format=ticket_format, **sql_options)
        if source_name is not None:
            if not _SOURCE_NAME.match(source_name):
                raise InputError(
                    f"source name {source_name!r} is not valid",
                    hint="use letters, digits, '_', '.', '-', ':' (at most 200 characters)",
                )
            source.key = source_name
        entries = default_acl(acl, private)
        return ingest_source(
            self,
            source,
            collection,
            acl=entries,
            private=private,
            progress=progress,
            read_progress=read_progress,
        )

    def upsert_document(
        self,
        collection: str,
        doc_id: str,
        text: str,
        title: str = "",
        metadata: Mapping[str, Any] | None = None,
        acl: Sequence[str] | None = None,
        private: bool = False,
    ) -> None:
        """Insert or replace one document; it is searchable when this returns."""
        doc = parse_document(
            {
                "doc_id": doc_id,
                "text": text,
                "title": title,
                "metadata": dict(metadata or {}),
                "acl": list(acl) if acl is not None else None,
                "private": private,
            }
        )
        apply_writes(self, collection, upserts=[doc])

    def existing_documents(self, collection: str, doc_ids: Sequence[str]) -> set[str]:
        """Which of ``doc_ids`` are stored in ``collection``."""
        with self.store.session() as session:
            return set(
                session.scalars(
                    sa.select(KbDocument.doc_id).where(
                        KbDocument.collection == collection,
                        KbDocument.doc_id.in_(list(doc_ids)),
                    )
                )
            )

    def delete_document(self, collection: str, doc_id: str) -> bool:
        """Delete a document from every live generation; False when it did not exist."""
        with self.store.session() as session:
            exists = session.get(KbDocument, (collection, doc_id)) is not None
        if exists:
            apply_writes(self, collection, deletes=[doc_id])
        return exists

    def get_document(self, collection: str, doc_id: str) -> Document | None:
        """A stored document, or None."""
        from daytwo.store.tables.knowledge import KbAcl

        with self.store.session(snapshot=True) as session:  # text and ACL of one commit
            row = session.get(KbDocument, (collection, doc_id))
            if row is None:
                return None
            acl = sorted(
                session.scalars(
                    sa.select(KbAcl.entry).where(
                        KbAcl.collection == collection, KbAcl.doc_id == doc_id
                    )
                )
            )
            return Document(
                collection,
                doc_id,
                row.title,
                row.text,
                row.source,
                dict(row.meta),
                acl,
                row.private,
                row.tenant,
            )

    def documents(
        self, collection: str, *, limit: int = 500, include_private: bool = False
    ) -> list[Document]:
        """Up to ``limit`` documents of ``collection`` by id (public ones unless asked).

        For tools that read the corpus itself (e.g. eval synthesis seeds); answers to
        principals go through :meth:`search`, which enforces ACLs.
        """
        with self.store.session() as session:
            if (
                session.scalar(sa.select(KbCollection.name).where(KbCollection.name == collection))
                is None
            ):
                raise NotFoundError(
                    f"collection {collection!r} does not exist", hint="see daytwo kb stats"
                )
            q = sa.select(KbDocument.doc_id).where(KbDocument.collection == collection)
            if not include_private:
                q = q.where(KbDocument.private.is_(False))
            ids = list(session.scalars(q.order_by(KbDocument.doc_id).limit(limit)))
        return [d for d in (self.get_document(collection, i) for i in ids) if d is not None]

    def sources(self, collection: str | None = None) -> list[dict[str, Any]]:
        """The sources of each collection: name, documents, last update."""
        with self.store.session() as session:
            q = (
                sa.select(
                    KbDocument.collection,
                    KbDocument.source,
                    sa.func.count(),
                    sa.func.max(KbDocument.updated_at),
                )
                .group_by(KbDocument.collection, KbDocument.source)
                .order_by(KbDocument.collection, KbDocument.source)
            )
            if collection is not None:
                if session.get(KbCollection, collection) is None:
                    raise NotFoundError(
                        f"collection {collection!r} does not exist", hint="see daytwo kb stats"
                    )
                q = q.where(KbDocument.collection == collection)
            return [
                {
                    "collection": coll,
                    "source": source,
                    "documents": int(count),
                    "updated_at": updated.isoformat() if updated is not None else None,
                }
                for coll, source, count, updated in session.execute(q)
            ]

    def search(
        self,
        collection: str,
        query: str,
        principal: str,
        groups: Sequence[str] = (),
        mode: str = "hybrid",
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        *,
        query_vector: npt.NDArray[np.float32] | None = None,
        timings: SearchTimings | None = None,
        reranker: Reranker | None = None,
        rerank_depth: int = 50,
    ) -> list[Hit]:
        """Search as ``principal`` (with ``groups``): ``mode`` is bm25, dense or hybrid.

        With a ``reranker`` (:mod:`daytwo.knowledge.rerank`), the first ``rerank_depth``
        hits (at least ``k``) are rescored by it and the best ``k`` returned."""
        depth = max(k, rerank_depth) if reranker is not None else k
        request = SearchRequest(collection, query, principal, tuple(groups), mode, depth, filters)
        hits = self.run(request, query_vector=query_vector, timings=timings)
        if reranker is None:
            return hits
        return rerank_hits(query, hits, reranker, k)

    def run(
        self,
        request: SearchRequest,
        *,
        query_vector: npt.NDArray[np.float32] | None = None,
        timings: SearchTimings | None = None,
    ) -> Hits:
        """Run a :class:`~daytwo.knowledge.search.SearchRequest` (what the CLI and REST build):
        a page of hits and its ``next_cursor``."""
        return routed_search(self, request, query_vector, timings)

    def close(self) -> None:
        """Save the ANN indexes."""
        self.save_indexes()
