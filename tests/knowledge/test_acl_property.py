"""Property: no search result ever reaches a principal outside the document's ACL."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daytwo.knowledge import KnowledgeBase

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
ENTRIES = ["user:ann", "user:bob", "group:sales", "group:hr", "group:everyone"]
PRINCIPALS = ["ann", "bob", "cy", ""]
GROUPS = ["sales", "hr", "ops"]
_counter = itertools.count()

doc_strategy = st.tuples(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
    st.lists(st.sampled_from(ENTRIES), max_size=3, unique=True),
    st.booleans(),
)


def _expected_entries(principal: str, groups: list[str], acls: list[list[str]]) -> set[str]:
    """The independent model of who is who (see daytwo.knowledge.acl)."""
    if not principal and not groups:
        return set()
    entries = {f"group:{g}" for g in groups}
    if principal:
        entries.add(f"user:{principal}")
    known = bool(groups) or any(f"user:{principal}" in acl for acl in acls)
    if known:
        entries.add("group:everyone")
    return entries


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    docs=st.lists(doc_strategy, min_size=1, max_size=8),
    principal=st.sampled_from(PRINCIPALS),
    groups=st.lists(st.sampled_from(GROUPS), max_size=2, unique=True),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    k=st.integers(min_value=1, max_value=6),
)
def test_no_result_outside_the_acl(
    sqlite_kb: KnowledgeBase,
    docs: list[tuple[list[str], list[str], bool]],
    principal: str,
    groups: list[str],
    query: list[str],
    k: int,
) -> None:
    collection = f"p{next(_counter)}"
    acls: dict[str, list[str]] = {}
    for i, (words, acl, private) in enumerate(docs):
        doc_id = f"d{i}"
        sqlite_kb.upsert_document(collection, doc_id, " ".join(words), acl=acl, private=private)
        stored = sqlite_kb.get_document(collection, doc_id)
        assert stored is not None
        acls[doc_id] = stored.acl
        if not acl:
            assert stored.acl == ([] if private else ["group:everyone"])  # default deny
    entries = _expected_entries(principal, groups, list(acls.values()))
    permitted = {d for d, acl in acls.items() if entries & set(acl)}
    for mode in ("bm25", "dense", "hybrid"):
        hits = sqlite_kb.search(collection, " ".join(query), principal, groups, mode=mode, k=k)
        got = {h.doc_id for h in hits}
        assert got <= permitted, (mode, got - permitted)
        if mode == "dense":  # filtering inside the search never shrinks the list
            assert len(hits) == min(k, len(permitted))
