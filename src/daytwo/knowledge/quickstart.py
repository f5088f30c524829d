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
    staff = kb.search(COLLECTION, QUERY, "alice", groups=["staff"], k=5)
    customer = kb.search(COLLECTION, QUERY, "bob", groups=["customers"], k=5)
    stranger = kb.search(COLLECTION, QUERY, "mallory", k=5)
    kb.close()
    staff_ids = [h.doc_id for h in staff]
    customer_ids = [h.doc_id for h in customer]
    private_ids = {"discount-codes.txt", "escalation-runbook.md", PRIVATE_DOC}
    private_ids.add("incident-2026-03-postmortem.md")
    ok = (
        bool(staff_ids)
        and staff_ids[0] == PRIVATE_DOC
        and bool(customer_ids)
        and not private_ids & set(customer_ids)
        and not stranger
    )
    documents = public.added + public.updated + public.unchanged
    documents += private.added + private.updated + private.unchanged
    detail = (
        f"{documents} docs; staff 'alice' top hit {staff_ids[0] if staff_ids else '-'}, "
        f"customer 'bob' top hit {customer_ids[0] if customer_ids else '-'} "
        f"(private hidden), unknown principal sees {len(stranger)}"
    )
    summary.add(
        "knowledge",
        ok,
        detail,
        documents=documents,
        skipped=len(public.skipped) + len(private.skipped),
        ingest_s=round(ingest_s, 2),
        staff_hits=staff_ids,
        customer_hits=customer_ids,
        unknown_principal_hits=len(stranger),
    )
