"""The README's search body is a valid request and runs, on both backends."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.keyword_query import KeywordOptions
from daytwo.knowledge.search import SearchRequest
from daytwo.server.routes.knowledge import SearchIn

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_search_body_runs(kb: KnowledgeBase) -> None:
    block = re.search(r"```json search-body\n(.*?)```", README.read_text(), flags=re.S)
    assert block is not None
    body = SearchIn.model_validate(json.loads(block.group(1)))
    meta = {"lang": "en", "year": 2024, "published": "2024-03-01", "tier": 1, "owner": "ann"}
    kb.upsert_document("c", "yes", "refunds go to the card", title="Refund", metadata=meta)
    kb.upsert_document("c", "no", "refunds go to the card", metadata={**meta, "archived": True})
    kb.upsert_document("c", "voucher", "a refund voucher for the card", metadata=meta)
    request = SearchRequest(
        "c",
        body.query,
        "ann",
        ("staff",),
        body.mode,
        body.k,
        body.filters,
        fusion=FusionConfig.from_dict(body.fusion),
        group_by=body.group_by,
        group_size=body.group_size,
        keyword=KeywordOptions(**body.keyword.model_dump()) if body.keyword else None,
    )
    hits = kb.run(request)
    assert hits[0].doc_id == "yes"
    assert "no" not in {h.doc_id for h in hits}  # the filter holds in both halves
    assert hits[0].highlights
    assert hits[0].chunks
    # the boolean syntax is the keyword half's: -voucher excludes there
    keyword_only = kb.run(dataclasses.replace(request, mode="bm25"))
    assert [h.doc_id for h in keyword_only] == ["yes"]
