"""Shadow reads, canary routing and migration status (the read side of a migration).

:func:`routed_search` is the search path of ``Indexes.search``: without an
unfinished, backfilled migration it searches the active generation; during one it
serves a ``canary_percent`` share of queries from the other generation, and runs a
``shadow_read_rate`` share on both, recording overlap@10 of the two result lists and
both latencies (``kb_shadow_reads``; never the query text). A failure to record a
sample never fails the live query. :func:`generations_status` and :func:`golden_ndcg`
report on it.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from daytwo.exceptions import InputError, StoreError
from daytwo.knowledge.cursors import cursor_generation
from daytwo.knowledge.generations import MigrationStatus, open_migration
from daytwo.knowledge.indexes import Indexes
from daytwo.knowledge.search import (
    Hit,
    Hits,
    SearchRequest,
    SearchTimings,
    generation,
    read_state,
    run_search,
)
from daytwo.store import utcnow
from daytwo.store.tables.knowledge_maintenance import KbMigration, KbShadowRead

__all__ = ["generations_status", "golden_ndcg", "routed_search"]

_rng = random.Random()


def _overlap(a: Sequence[Hit], b: Sequence[Hit], k: int = 10) -> float:
    first = [h.doc_id for h in a[:k]]
    second = {h.doc_id for h in b[:k]}
    if not first:
        return 1.0 if not second else 0.0
    return len(set(first) & second) / len(set(first))


def routed_search(
    kb: Indexes,
    request: SearchRequest,
    query_vector: npt.NDArray[np.float32] | None = None,
    timings: SearchTimings | None = None,
) -> Hits:
    """Search the active generation; during a migration, shadow-read and canary-route.

    The route is part of the collection state each search reads in its first statement
    (:func:`daytwo.knowledge.search.read_state`): a cutover, rollback or a change of the
    rates by another process is seen by the next search.
    """
    with kb.store.session(snapshot=True) as session:
        state = read_state(kb, session, request.collection)
        route = state.route
        search = functools.partial(run_search, kb, request, state=state)
        if route is None or query_vector is not None:
            return search(query_vector, timings, session=session)
        paged = cursor_generation(request.cursor) if request.cursor else None
        if paged in state.seqs:  # a next page comes from the generation of the first
            gen = generation(kb, session, paged)
            return search(None, timings, generation=gen, session=session)
        active = generation(kb, session, state.active)
        other = generation(kb, session, route.other)
        serve, compare, served = active, other, "active"
        if route.canary_percent > 0 and _rng.random() * 100.0 < route.canary_percent:
            serve, compare, served = other, active, "canary"
        started = time.perf_counter()
        hits = search(None, timings, generation=serve, session=session)
        serve_ms = (time.perf_counter() - started) * 1000.0
    if not (route.shadow_read_rate > 0 and _rng.random() < route.shadow_read_rate):
        return hits
    try:  # in a transaction of its own, so that a failure cannot touch the live one
        started = time.perf_counter()
        shadow = search(generation=compare)
        compare_ms = (time.perf_counter() - started) * 1000.0
    except StoreError:
        return hits  # a busy store must not fail the live query; the sample is dropped
    active_hits, shadow_hits = (hits, shadow) if served == "active" else (shadow, hits)
    active_ms, shadow_ms = (serve_ms, compare_ms) if served == "active" else (compare_ms, serve_ms)
    try:
        with kb.store.session(write=True) as session:
            session.add(
                KbShadowRead(
                    migration=route.migration,
                    served=served,
                    overlap=_overlap(active_hits, shadow_hits),
                    active_ms=active_ms,
                    shadow_ms=shadow_ms,
                    at=utcnow(),
                )
            )
    except StoreError:
        pass  # likewise
    return hits


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def generations_status(kb: Indexes, collection: str | None = None) -> dict[str, Any]:
    """State, backfill progress and shadow-read figures of every collection's generations."""
    stats = kb.stats(collection)
    out: dict[str, Any] = {"collections": []}
    with kb.store.session() as session:
        for coll in stats["collections"]:
            mig = open_migration(session, coll["name"])
            if mig is None:
                mig = session.scalars(
                    sa.select(KbMigration)
                    .where(KbMigration.collection == coll["name"])
                    .order_by(KbMigration.created_at.desc())
                    .limit(1)
                ).first()
            migration: dict[str, Any] | None = None
            if mig is not None:
                migration = MigrationStatus.of(mig).to_dict()
                reads = session.execute(
                    sa.select(
                        KbShadowRead.overlap, KbShadowRead.active_ms, KbShadowRead.shadow_ms
                    ).where(KbShadowRead.migration == mig.id)
                ).all()
                overlaps = [float(r[0]) for r in reads]
                migration["shadow_reads"] = {
                    "samples": len(reads),
                    "overlap_at_10": round(sum(overlaps) / len(overlaps), 4) if reads else None,
                    "active_p50_ms": _round(_percentile([r[1] for r in reads], 50)),
                    "shadow_p50_ms": _round(_percentile([r[2] for r in reads], 50)),
                    "active_p99_ms": _round(_percentile([r[1] for r in reads], 99)),
                    "shadow_p99_ms": _round(_percentile([r[2] for r in reads], 99)),
                }
            out["collections"].append(
                {
                    "name": coll["name"],
                    "active_generation": coll["active_generation"],
                    "documents": coll["documents"],
                    "generations": [
                        {
                            k: g[k]
                            for k in (
                                "id",
                                "state",
                                "embedder",
                                "dim",
                                "chunking",
                                "analyzer",
                                "seq",
                                "chunks",
                            )
                        }
                        for g in coll["generations"]
                    ],
                    "migration": migration,
                }
            )
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def golden_ndcg(
    kb: Indexes,
    collection: str,
    golden: Path,
    principal: str,
    groups: Sequence[str] = (),
    *,
    mode: str = "hybrid",
    k: int = 10,
) -> dict[str, float]:
    """nDCG@k of every live generation on a golden set (JSONL ``{"query", "relevant"}``)."""
    cases: list[tuple[str, set[str]]] = []
    try:
        lines = golden.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read golden set {golden}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query, relevant = str(item["query"]), {str(x) for x in item["relevant"]}
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"{golden}:{number} is not a JSON object with 'query' and 'relevant' (a list)",
                hint='for example {"query": "reset password", "relevant": ["faq-1"]}',
            ) from None
        cases.append((query, relevant))
    if not cases:
        raise InputError(f"golden set {golden} has no cases", hint="add JSONL lines")
    out: dict[str, float] = {}
    for gen in kb.live_generations(collection):
        scores = []
        for query, relevant in cases:
            request = SearchRequest(collection, query, principal, tuple(groups), mode, k)
            hits = run_search(kb, request, generation=gen)
            docs = list(dict.fromkeys(h.doc_id for h in hits))[:k]
            dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(docs) if d in relevant)
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
            scores.append(dcg / ideal if ideal else 0.0)
        out[gen.id] = round(sum(scores) / len(scores), 4)
    return out
