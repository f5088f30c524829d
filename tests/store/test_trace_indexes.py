"""The spans table keeps one index led by trace_id, and lookups by trace use it."""

from __future__ import annotations

import sqlalchemy as sa

from daytwo.store import Store


def test_one_index_answers_a_traces_spans_and_its_runs(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        indexes = sa.inspect(conn).get_indexes("trace_spans")
        led_by_trace = [ix["name"] for ix in indexes if ix["column_names"][0] == "trace_id"]
        assert led_by_trace == ["ix_trace_spans_trace_id_run"]

        def plan(sql: str) -> str:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("t" * 32,)).fetchall()
            return " | ".join(str(r[3]) for r in rows)

        runs = plan(
            "SELECT DISTINCT run_id FROM trace_spans WHERE trace_id = ? AND run_id IS NOT NULL"
        )
        assert "COVERING INDEX ix_trace_spans_trace_id_run (trace_id=? AND run_id>?)" in runs
        spans = plan("SELECT * FROM trace_spans WHERE trace_id = ?")
        assert "INDEX ix_trace_spans_trace_id_run (trace_id=?)" in spans
