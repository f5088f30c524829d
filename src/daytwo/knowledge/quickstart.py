"""Quickstart stage of the knowledge layer: ingest the sample KB, search as two principals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from daytwo.settings import Settings
    from daytwo.store import Store

__all__ = ["COLLECTION", "SAMPLE_KB", "quickstart_stage"]

SAMPLE_KB = Path(__file__).with_name("sample_kb")
"""The sample knowledge base shipped in the package (Kestrel Cloud support docs)."""

COLLECTION = "kestrel-support"
QUERY = "who approves a refund above 2,000 euros"
PRIVATE_DOC = "refund-approval-limits.md"
MEDIA_QUERIES = {
    # modality: (query as staff, what the top hit's doc id holds)
    "scanned page": ("who signs the data deletion form", "scanned-deletion-request.png"),
    "voicemail": ("Northwind shared folder stopped syncing", "voicemail-northwind.ogg"),
    "e-mail thread": ("storage quota upgrade mid-month", "mail:"),
}


class _Summary(Protocol):
    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None: ...


def quickstart_stage(summary: _Summary, settings: Settings, store: Store) -> None:
    """Ingest the sample KB (one private section) and search as staff and as a customer."""
    from daytwo.knowledge import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase(store, settings.data_dir, embedder=settings.embedder)
    public = kb.ingest_path(SAMPLE_KB / "public", COLLECTION)
    private = kb.ingest_path(SAMPLE_KB / "private", COLLECTION, acl=["group:staff"], private=True)
    ingest_s = time.perf_counter() - started
    # The support inbox: a scanned form (OCR), a voicemail (transcript), an e-mail thread.
    # Staff only (the thread's people too); without the multimodal extra the scan and the
    # voicemail are skipped with the reason.
    started = time.perf_counter()
    inbox = kb.ingest_path(SAMPLE_KB / "inbox", COLLECTION, acl=["group:staff"], private=True)
    media_s = time.perf_counter() - started
    media_hits: dict[str, str | None] = {}
    leaked: list[str] = []  # inbox documents a customer can see (must stay empty)
    for kind, (query, expect) in MEDIA_QUERIES.items():
        hits = kb.search(COLLECTION, query, "alice", groups=["staff"], k=3)
        media_hits[kind] = next((h.doc_id for h in hits if expect in h.doc_id), None)
        seen = kb.search(COLLECTION, query, "bob", groups=["customers"], k=5)
        leaked += [h.doc_id for h in seen if any(e in h.doc_id for _, e in MEDIA_QUERIES.values())]
    skipped = " ".join(s.item for s in inbox.skipped)
    staff = kb.search(COLLECTION, QUERY, "alice", groups=["staff"], k=5)
    customer = kb.search(COLLECTION, QUERY, "bob", groups=["customers"], k=5)
    stranger = kb.search(COLLECTION, QUERY, "mallory", k=5)
    kb.close()
    staff_ids = [h.doc_id for h in staff]
    customer_ids = [h.doc_id for h in customer]
    private_ids = {"discount-codes.txt", "escalation-runbook.md", PRIVATE_DOC}
    private_ids.add("incident-2026-03-postmortem.md")
    # Each modality has its hit, unless its file was skipped (the extra is missing).
    media_ok = all(
        doc is not None or MEDIA_QUERIES[kind][1] in skipped for kind, doc in media_hits.items()
    )
    ok = (
        media_ok
        and not leaked
        and bool(staff_ids)
        and staff_ids[0] == PRIVATE_DOC
        and bool(customer_ids)
        and not private_ids & set(customer_ids)
        and not stranger
    )
    documents = public.added + public.updated + public.unchanged
    documents += private.added + private.updated + private.unchanged
    documents += inbox.added + inbox.updated + inbox.unchanged
    found = "; ".join(f"{kind}: {doc or 'no hit'}" for kind, doc in media_hits.items())
    detail = (
        f"{documents} docs; staff 'alice' top hit {staff_ids[0] if staff_ids else '-'}, "
        f"customer 'bob' top hit {customer_ids[0] if customer_ids else '-'} "
        f"(private hidden), unknown principal sees {len(stranger)}; inbox ({found})"
    )
    if inbox.skipped:
        detail += (
            f"; skipped {', '.join(s.item for s in inbox.skipped)} ({inbox.skipped[0].reason})"
        )
    summary.add(
        "knowledge",
        ok,
        detail,
        documents=documents,
        skipped=len(public.skipped) + len(private.skipped) + len(inbox.skipped),
        ingest_s=round(ingest_s, 2),
        media_ingest_s=round(media_s, 2),
        media_hits=media_hits,
        staff_hits=staff_ids,
        customer_hits=customer_ids,
        unknown_principal_hits=len(stranger),
    )
