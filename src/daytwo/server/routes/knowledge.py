"""Knowledge: collections with their generations and migration progress, documents, search,
erase, and index health (tombstones, recall probe).

A collection belongs to the tenant that first writes to it through the API (collections
made by the CLI belong to ``default``); searches run as the caller's principal, so the
documents' ACLs apply inside the tenant too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from daytwo.exceptions import MissingDependency, NotFoundError
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.keyword_query import KeywordOptions
from daytwo.knowledge.search import SearchRequest
from daytwo.server.auth import Principal
from daytwo.server.deps import Admin, Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.server.local_work import run_local
from daytwo.server.ownership import check_owned, check_visible, claim, release, visible
from daytwo.server.tenancy import principal_string
from daytwo.store import Store
from daytwo.store.analyzers import STEMMED

__all__ = ["NEXT_CURSOR", "collections_status", "get_kb", "router"]

router = APIRouter(prefix="/api/v1/knowledge", tags=["knowledge"], responses=ERROR_RESPONSES)
KIND = "collection"
NEXT_CURSOR = "Daytwo-Next-Cursor"

Collection = Annotated[
    str,
    Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
]
DocId = Annotated[str, Path(min_length=1, max_length=512)]
StoreDep = Annotated[Store, Depends(get_store)]


def get_kb(request: Request) -> Any:
    """The app's knowledge base (MissingDependency when the server runs without one)."""
    kb = getattr(request.app.state, "kb", None)
    if kb is None:
        raise MissingDependency("this server has no knowledge base", hint="start daytwo serve")
    return kb


async def _get_kb(request: Request) -> Any:
    return get_kb(request)  # async: no thread-pool hand-off for a read of the app's state


KbDep = Annotated[Any, Depends(_get_kb)]


def _groups(principal: Principal) -> list[str]:
    return [f"tenant:{principal.tenant}", f"role:{principal.role}"]


def _generations_status(kb: Any) -> dict[str, Any]:
    from daytwo.knowledge.shadow_reads import generations_status

    return generations_status(kb)


def collections_status(kb: Any, store: Store, tenant: str) -> list[dict[str, Any]]:
    """Generations and migration progress of the tenant's collections."""
    status = _generations_status(kb)["collections"]
    names = set(visible(store, KIND, [c["name"] for c in status], tenant))
    return [c for c in status if c["name"] in names]


class GenerationOut(BaseModel):
    id: str
    state: str
    embedder: str
    dim: int
    chunking: Any = None
    analyzer: str = "english"
    seq: int
    chunks: int


class CollectionOut(BaseModel):
    """A collection: its generations and the migration in progress (or last one)."""

    name: str
    active_generation: str | None
    documents: int
    generations: list[GenerationOut]
    migration: dict[str, Any] | None


class DocumentIn(BaseModel):
    """A document to insert or replace."""

    doc_id: str = Field(min_length=1, max_length=512)
    text: str = Field(max_length=500_000)
    title: str = Field(default="", max_length=1000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    acl: list[str] | None = Field(
        default=None, description="ACL entries (user:X, group:Y); default: everyone."
    )
    private: bool = False


class Written(BaseModel):
    collection: str
    doc_id: str
    status: str


class SearchIn(BaseModel):
    """A search: the query, and the options of the query language (README.md, "Search")."""

    query: str = Field(min_length=1, max_length=2000)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    k: int = Field(default=10, ge=1, le=100, description="Hits per page (documents if grouped).")
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Typed metadata filter applied inside the search: Qdrant's shape "
            '({"must"|"should"|"must_not": [{"key": K, "match": {"value"|"any"|"except": ...}}'
            ' | {"key": K, "range": {"gt"|"gte"|"lt"|"lte": number or ISO date}}'
            ' | {"key": K, "exists": bool} | nested filter]}), or flat {key: value} equalities.'
        ),
    )
    fusion: dict[str, Any] | None = Field(
        default=None,
        description=(
            "This search's hybrid fusion instead of the collection's: method rrf|convex|dbsf, "
            "rrf_k, alpha, bm25_weight, dense_weight, depth (unset fields take defaults)."
        ),
    )
    group_by: Literal["document"] | None = Field(
        default=None, description="One hit per document with its best chunks."
    )
    group_size: int = Field(default=1, ge=1, le=20, description="Chunks per document (grouped).")
    cursor: str | None = Field(
        default=None,
        max_length=400,
        description="The Daytwo-Next-Cursor header of the previous page of this same search.",
    )
    keyword: KeywordIn | None = None
    rerank: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name of a reranker the operator configured (setting `rerankers`; never "
        "a URL): it rescores the first rerank_depth hits, pages are cut from its order.",
    )
    rerank_depth: int = Field(default=50, ge=1, le=200, description="Hits the reranker rescores.")


class KeywordIn(BaseModel):
    """Keyword options (README.md, "Search")."""

    syntax: Literal["plain", "boolean"] = Field(
        default="plain", description='boolean: AND, OR, NOT, -x, ( ), "phrases".'
    )
    title_boost: float = Field(default=1.0, ge=0.0, le=10.0, description="Title term weight.")
    highlight: bool = Field(default=False, description="Character offsets of query terms.")


class HighlightOut(BaseModel):
    field: Literal["title", "text"]
    start: int
    end: int


class ChunkOut(BaseModel):
    chunk_id: str
    text: str
    score: float
    highlights: list[HighlightOut] | None = None


class HitOut(BaseModel):
    doc_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    chunks: list[ChunkOut] | None = Field(
        default=None, description="With group_by=document: the document's best chunks."
    )
    highlights: list[HighlightOut] | None = None


@router.get("/collections", response_model=list[CollectionOut], summary="Collections")
def collections(principal: Viewer, store: StoreDep, kb: KbDep) -> list[CollectionOut]:
    return [CollectionOut(**c) for c in collections_status(kb, store, principal.tenant)]


class CollectionIn(BaseModel):
    """A new collection and the analyzer of its keyword index."""

    name: str = Field(min_length=1, max_length=200)
    analyzer: str = Field(
        default="english",
        max_length=32,
        description="english, simple (no stemming) or a language: " + ", ".join(STEMMED),
    )


class CollectionCreated(BaseModel):
    name: str
    analyzer: str
    active_generation: str


@router.post(
    "/collections",
    response_model=CollectionCreated,
    summary="Create a collection with its keyword analyzer (idempotent for the same one)",
)
def create_collection(
    body: CollectionIn, principal: Operator, store: StoreDep, kb: KbDep, request: Request
) -> CollectionCreated:
    exists = body.name in {c["name"] for c in kb.stats()["collections"]}
    new = claim(store, KIND, body.name, principal.tenant, "collection", exists=exists)
    try:
        gen = kb.ensure_collection(body.name, analyzer=body.analyzer)
    except BaseException:
        if new:
            release(store, KIND, body.name)
        raise
    audit_event(request, principal, "collection.create", body.name, {"analyzer": gen.analyzer})
    return CollectionCreated(name=body.name, analyzer=gen.analyzer, active_generation=gen.id)


@router.put(
    "/collections/{collection}/documents",
    response_model=Written,
    summary="Insert or replace a document (searchable when this returns)",
)
def upsert(
    collection: Collection,
    body: DocumentIn,
    principal: Operator,
    store: StoreDep,
    kb: KbDep,
    request: Request,
) -> Written:
    exists = collection in {c["name"] for c in kb.stats()["collections"]}
    new = claim(store, KIND, collection, principal.tenant, "collection", exists=exists)
    try:
        kb.upsert_document(
            collection,
            body.doc_id,
            body.text,
            title=body.title,
            metadata=body.metadata,
            acl=body.acl,
            private=body.private,
        )
    except BaseException:
        if new:
            release(store, KIND, collection)
        raise
    # No document id in the chain: it may name a person, and an erase cannot rewrite it.
    audit_event(
        request, principal, "doc.write", collection, {"chars": len(body.text), "acl": body.acl}
    )
    return Written(collection=collection, doc_id=body.doc_id, status="stored")


@router.delete(
    "/collections/{collection}/documents/{doc_id}",
    response_model=Written,
    summary="Erase a document from every generation",
)
def erase(
    collection: Collection,
    doc_id: DocId,
    principal: Operator,
    store: StoreDep,
    kb: KbDep,
    request: Request,
) -> Written:
    check_owned(store, KIND, collection, principal.tenant, "collection")
    if not kb.delete_document(collection, doc_id):
        raise NotFoundError(f"no document {doc_id!r} in {collection!r}", hint="check the id")
    audit_event(request, principal, "doc.erase", collection)
    return Written(collection=collection, doc_id=doc_id, status="erased")


class BulkItemOut(BaseModel):
    """The outcome of one NDJSON line."""

    line: int
    op: str
    doc_id: str | None
    status: Literal["stored", "erased", "not_found", "error"]
    error: str | None = None


class BulkOut(BaseModel):
    """Per-line results of a bulk request, in line order, and their counts."""

    collection: str
    lines: int
    stored: int
    erased: int
    not_found: int
    error: int
    items: list[BulkItemOut]


_BULK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"doc_id": "a", "text": "..."}\n{"op": "delete", "doc_id": "b"}\n',
            }
        },
    }
}


@router.post(
    "/collections/{collection}/bulk",
    response_model=BulkOut,
    summary="Upsert and delete documents from NDJSON lines (streamed; one result per line)",
    description="Each line is a JSON object: a document (`op` `upsert`, the default: "
    '`doc_id`, `text`, `title`, `metadata`, `acl`, `private`) or `{"op": "delete", '
    '"doc_id": ...}`. The body is read as it arrives; good lines are written in batches, '
    "each item atomic; a bad line gets an `error` result and never stops the others.",
    openapi_extra=_BULK_BODY,
)
async def bulk(
    collection: Collection, principal: Operator, store: StoreDep, kb: KbDep, request: Request
) -> BulkOut:
    from starlette.concurrency import run_in_threadpool

    from daytwo.knowledge.bulk import BATCH, BulkWriter, LineSplitter

    def claim_name() -> bool:
        exists = collection in {c["name"] for c in kb.stats()["collections"]}
        return claim(store, KIND, collection, principal.tenant, "collection", exists=exists)

    new = await run_in_threadpool(claim_name)  # 409 before any line is read
    writer = BulkWriter(kb, collection)
    splitter = LineSplitter()
    items: list[Any] = []
    pending: list[bytes | None] = []
    try:
        async for chunk in request.stream():
            pending.extend(splitter.push(chunk))
            if len(pending) >= BATCH:
                items.extend(await run_in_threadpool(writer.feed, pending))
                pending = []
        pending.extend(splitter.end())
        items.extend(await run_in_threadpool(writer.feed, pending))
        items.extend(await run_in_threadpool(writer.finish))
    finally:
        if new and writer.counts["stored"] == 0:
            await run_in_threadpool(release, store, KIND, collection)
    summary = writer.summary()
    if summary["stored"]:
        audit_event(request, principal, "doc.write", collection, {"items": summary["stored"]})
    if summary["erased"]:
        audit_event(request, principal, "doc.erase", collection, {"items": summary["erased"]})
    return BulkOut(
        collection=collection,
        **summary,
        items=[BulkItemOut(**i.to_dict()) for i in sorted(items, key=lambda i: i.line)],
    )


@router.post(
    "/collections/{collection}/search",
    response_model=list[HitOut],
    summary="Search (the next page's cursor is in the Daytwo-Next-Cursor header)",
)
async def search(
    collection: Collection,
    body: SearchIn,
    principal: Viewer,
    store: StoreDep,
    kb: KbDep,
    request: Request,
    response: Response,
) -> list[HitOut]:
    # CPU and database only: on the local-work threads, not the shared pool.
    return await run_local(request, _search, collection, body, principal, store, kb, response)


def _search(
    collection: str,
    body: SearchIn,
    principal: Principal,
    store: Store,
    kb: Any,
    response: Response,
) -> list[HitOut]:
    check_visible(store, KIND, collection, principal.tenant, "collection")
    request = SearchRequest(
        collection,
        body.query,
        principal_string(principal),
        tuple(_groups(principal)),
        body.mode,
        body.k,
        body.filters,
        fusion=FusionConfig.from_dict(body.fusion) if body.fusion is not None else None,
        group_by=body.group_by,
        group_size=body.group_size,
        cursor=body.cursor,
        keyword=KeywordOptions(**body.keyword.model_dump()) if body.keyword else None,
        rerank=body.rerank,
        rerank_depth=body.rerank_depth,
    )
    hits = kb.run(request)
    if hits.next_cursor is not None:
        response.headers[NEXT_CURSOR] = hits.next_cursor
    return [
        HitOut(
            doc_id=h.doc_id,
            chunk_id=h.chunk_id,
            title=h.title,
            text=h.text,
            score=h.score,
            chunks=[
                ChunkOut(
                    chunk_id=c.chunk_id,
                    text=c.text,
                    score=c.score,
                    highlights=_marks(c) if request.keyword and request.keyword.highlight else None,
                )
                for c in h.chunks
            ]
            if h.chunks
            else None,
            highlights=_marks(h) if request.keyword and request.keyword.highlight else None,
        )
        for h in hits
    ]


def _marks(hit: Any) -> list[HighlightOut]:
    return [HighlightOut(field=m.field, start=m.start, end=m.end) for m in hit.highlights]


class GenerationHealth(BaseModel):
    collection: str
    generation: str
    state: str
    embedder: str
    recall_at_10: float | None = None
    probe_queries: int
    probe_seconds: float
    extra: dict[str, Any] = Field(default_factory=dict, description="Tombstone figures.")


@router.get(
    "/collections/{collection}/health",
    response_model=list[GenerationHealth],
    summary="Tombstones and recall probe of the live generations",
)
def health(
    collection: Collection,
    principal: Viewer,
    store: StoreDep,
    kb: KbDep,
    samples: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[GenerationHealth]:
    from daytwo.knowledge.maintenance import health as kb_health

    check_visible(store, KIND, collection, principal.tenant, "collection")
    out = []
    known = {
        "collection",
        "generation",
        "state",
        "embedder",
        "recall_at_10",
        "probe_queries",
        "probe_seconds",
    }
    for g in kb_health(kb, collection, samples=samples)["generations"]:
        recall = g.get("recall_at_10")
        out.append(
            GenerationHealth(
                **{k: v for k, v in g.items() if k in known and k != "recall_at_10"},
                recall_at_10=recall if isinstance(recall, (int, float)) else None,
                extra={k: v for k, v in g.items() if k not in known},
            )
        )
    return out


class MigrationIn(BaseModel):
    """Start (or resume) a shadow-index migration and backfill it."""

    embedder: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the active one's."
    )
    analyzer: str | None = Field(
        default=None, max_length=32, description="Keyword analyzer; default: the active one's."
    )
    chunking: str | None = Field(default=None, max_length=100, description="size=N,overlap=N")
    shadow_read_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    canary_percent: float | None = Field(default=None, ge=0.0, le=100.0)
    max_batches: int | None = Field(
        default=None, ge=1, le=100_000, description="Stop after this many batches (resumable)."
    )


class MigrationOut(BaseModel):
    """A migration's state and backfill progress."""

    id: str
    collection: str
    source_generation: str
    target_generation: str
    state: str
    done: int
    total: int
    shadow_read_rate: float
    canary_percent: float


def _migration_out(status: Any) -> MigrationOut:
    return MigrationOut(
        id=status.id,
        collection=status.collection,
        source_generation=status.source_generation,
        target_generation=status.target_generation,
        state=status.state,
        done=status.done,
        total=status.total,
        shadow_read_rate=status.shadow_read_rate,
        canary_percent=status.canary_percent,
    )


@router.post(
    "/collections/{collection}/migration",
    response_model=MigrationOut,
    summary="Start or resume a shadow-index migration and backfill it",
)
def migrate(
    collection: Collection, body: MigrationIn, principal: Admin, store: StoreDep, kb: KbDep
) -> MigrationOut:
    from daytwo.knowledge import generations as gen

    check_owned(store, KIND, collection, principal.tenant, "collection")
    chunking = None
    if body.chunking:
        chunking = gen.parse_chunking(body.chunking, kb.active_generation(collection).chunking)
    status = gen.start_migration(
        kb,
        collection,
        body.embedder or kb.active_generation(collection).embedder,
        chunking=chunking,
        analyzer=body.analyzer,
        shadow_read_rate=body.shadow_read_rate,
        canary_percent=body.canary_percent,
        actor=principal_string(principal),
    )
    status = gen.backfill(kb, status.id, max_batches=body.max_batches)
    return _migration_out(status)


@router.post(
    "/collections/{collection}/migration/cutover",
    response_model=MigrationOut,
    summary="Make the backfilled shadow generation active",
)
def cutover(collection: Collection, principal: Admin, store: StoreDep, kb: KbDep) -> MigrationOut:
    from daytwo.knowledge import generations as gen

    check_owned(store, KIND, collection, principal.tenant, "collection")
    return _migration_out(gen.cutover(kb, collection, actor=principal_string(principal)))


@router.post(
    "/collections/{collection}/migration/rollback",
    response_model=MigrationOut,
    summary="Go back to the previous generation",
)
def rollback(collection: Collection, principal: Admin, store: StoreDep, kb: KbDep) -> MigrationOut:
    from daytwo.knowledge import generations as gen

    check_owned(store, KIND, collection, principal.tenant, "collection")
    return _migration_out(gen.rollback(kb, collection, actor=principal_string(principal)))
