"""The run seeder writes rows in the shapes the runtime, the processor and ingest write."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from daytwo.server.tenancy import tenant_of
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing.seed_runs import NEEDLE_PHRASE, seed_runs
from daytwo.tracing.ledger import rollup


def test_seeded_runs_are_what_the_ledger_and_tenancy_see(store: Store) -> None:
    seeded = seed_runs(store, 600, seed=3, batch=250)
    with store.session() as s:
        runs = {r.id: r for r in s.scalars(sa.select(RunRecord))}
        spans = s.scalar(sa.select(sa.func.count()).select_from(SpanRow))
    assert len(runs) == seeded.runs == 600
    assert spans == seeded.spans > 3 * 600
    assert sum(r.status == "failed" for r in runs.values()) == seeded.failed > 0
    tenants = {t: sum(tenant_of(r.principal) == t for r in runs.values()) for t in seeded.by_tenant}
    assert tenants == seeded.by_tenant
    assert min(tenants.values()) > 0
    # The needle: the one run with the phrase, failing, of acme, in its session.
    with_phrase = [r for r in runs.values() if NEEDLE_PHRASE in str(r.inputs)]
    needle = seeded.needle
    assert [r.id for r in with_phrase] == [needle.run_id]
    assert runs[needle.run_id].status == "failed"
    assert runs[needle.run_id].error
    assert tenant_of(runs[needle.run_id].principal) == "acme"
    assert needle.run_id in needle.session_runs
    assert len(needle.session_runs) >= 2
    assert {runs[r].session_id for r in needle.session_runs} == {needle.session_id}
    assert {runs[r].user_id for r in needle.session_runs} == {needle.user_id}
    # External traces are runs otlp-<trace> whose spans all carry the run id.
    assert len(seeded.external_run_ids) == seeded.external == 1
    ext = seeded.external_run_ids[0]
    assert ext.startswith("otlp-")
    assert runs[ext].agent_version == 0
    with store.session() as s:
        ext_spans = s.scalars(sa.select(SpanRow).where(SpanRow.trace_id == ext[5:])).all()
    assert ext_spans
    assert {sp.run_id for sp in ext_spans} == {ext}
    # A run's cost is the ledger's sum over its calls (found through the trace).
    by_run = {g.key: g.cost_usd for g in rollup(store, "run")}
    for run in runs.values():
        ledger = by_run.get(run.id, Decimal(0))
        assert abs(float(ledger) - run.cost_usd) < 1e-9, run.id


def test_the_same_seed_gives_the_same_runs(tmp_path: object) -> None:
    ids = []
    for i in range(2):
        store = Store(f"sqlite:///{tmp_path}/s{i}.db")
        store.upgrade()
        seeded = seed_runs(store, 50, seed=11)
        with store.session() as s:
            ids.append(sorted(s.scalars(sa.select(RunRecord.id))))
        assert seeded.needle.run_id in ids[-1]
        store.dispose()
    assert ids[0] == ids[1]


def test_seeding_in_bulk_leaves_the_text_index_the_trigger_would_have(tmp_path: object) -> None:
    """On SQLite the seeder fills the free-text index in one rebuild instead of by its
    insert trigger: the index holds what the trigger gives row by row (an integrity
    check of the FTS table against its content, and the same matches as a scan), and the
    trigger is back for the runs written after seeding."""
    from daytwo.store.run_text import SQLITE_TABLE

    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.upgrade()
    seed_runs(store, 300, seed=5, batch=100)
    with store.session(write=True) as s:
        conn = s.connection()
        conn.exec_driver_sql(
            f"INSERT INTO {SQLITE_TABLE}({SQLITE_TABLE}, rank) VALUES ('integrity-check', 1)"
        )
        triggers = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'runtime_runs'"
        ).scalars()
        assert {f"{SQLITE_TABLE}_{t}" for t in ("ai", "ad", "au")} <= set(triggers)
        fragment = NEEDLE_PHRASE[2:12]
        indexed = conn.exec_driver_sql(
            f"SELECT count(*) FROM {SQLITE_TABLE} WHERE {SQLITE_TABLE} MATCH ?",
            (f'"{fragment}"',),
        ).scalar()
        scanned = conn.exec_driver_sql(
            "SELECT count(*) FROM runtime_runs WHERE inputs LIKE ? OR outputs LIKE ? "
            "OR error LIKE ?",
            (f"%{fragment}%",) * 3,
        ).scalar()
        assert indexed == scanned >= 1
    store.dispose()
