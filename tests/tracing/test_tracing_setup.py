"""setup_tracing stores spans and decisions; it is idempotent and re-pointable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.store import Store
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import Price, TracingHandle, record_decision, setup_tracing


def test_spans_and_decisions_are_stored(tracing: TracingHandle, store: Store) -> None:
    tracer = trace.get_tracer("daytwo.test")
    with tracer.start_as_current_span("run", attributes={"daytwo.run.id": "run-1"}) as root:
        with tracer.start_as_current_span("execute_tool search") as child:
            child.set_attribute("gen_ai.operation.name", "execute_tool")
            assert record_decision(
                "tool_choice", "Chose search because it is fastest.", {"candidates": ["a", "b"]}
            )
    assert tracing.flush()
    with store.session() as s:
        spans = {r.name: r for r in s.scalars(sa.select(SpanRow))}
        decisions = list(s.scalars(sa.select(DecisionRow)))
    assert set(spans) == {"run", "execute_tool search"}
    root_id = format(root.get_span_context().span_id, "016x")
    assert spans["execute_tool search"].parent_span_id == root_id
    assert spans["run"].run_id == "run-1"
    assert spans["run"].cost_status is None
    assert len(decisions) == 1
    assert decisions[0].span_id == spans["execute_tool search"].span_id
    assert decisions[0].data == {"candidates": ["a", "b"]}
    assert decisions[0].summary.startswith("Chose search")


def test_setup_is_idempotent_and_repointable(sqlite_store: Store, tmp_path) -> None:
    first = setup_tracing(sqlite_store)
    assert setup_tracing(sqlite_store) is first
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other.upgrade()
    second = setup_tracing(other)
    assert second is not first
    assert not first.active
    with trace.get_tracer("daytwo.test").start_as_current_span("x"):
        pass
    second.flush()
    with other.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(SpanRow)) == 1
    with sqlite_store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(SpanRow)) == 0
    second.shutdown()
    assert not record_decision("x", "no span")
    other.dispose()


def test_a_full_queue_drops_spans_instead_of_growing(sqlite_store: Store) -> None:
    from daytwo.tracing.processor import StoreSpanProcessor

    handle = setup_tracing(sqlite_store)
    handle.store_processor.max_queue = 0
    with trace.get_tracer("daytwo.test").start_as_current_span("dropped"):
        pass
    assert handle.store_processor.dropped == 1
    handle.store_processor.max_queue = 10
    with trace.get_tracer("daytwo.test").start_as_current_span("kept"):
        pass
    handle.flush()
    with sqlite_store.session() as s:
        assert list(s.scalars(sa.select(SpanRow.name))) == ["kept"]
    handle.shutdown()
    assert isinstance(handle.store_processor, StoreSpanProcessor)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_forked_child_stores_its_own_spans(sqlite_store: Store, writer: str) -> None:
    import os

    handle = setup_tracing(sqlite_store, writer=writer)
    pid = os.fork()
    if pid == 0:  # the child: trace, flush, leave without running pytest's teardown
        code = 1
        try:
            with trace.get_tracer("daytwo.test").start_as_current_span("in child"):
                pass
            code = 0 if handle.flush() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with sqlite_store.session() as s:
        assert list(s.scalars(sa.select(SpanRow.name))) == ["in child"]
    handle.shutdown()


class _CountingPrices:
    """A price source that records every question it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime]] = []

    def price(self, model: str, at: datetime, /) -> Price:
        self.asked.append((model, at))
        return Price(input=Decimal("1"), output=Decimal("2"))


def test_rows_keep_times_and_attributes_and_prices_are_asked_once_a_second(store: Store) -> None:
    prices = _CountingPrices()
    handle = setup_tracing(store, prices=prices)
    tracer = trace.get_tracer("daytwo.test")
    t0 = 1_700_000_000_123_456_789  # ns: 2023-11-14 22:13:20.123456789 UTC
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 10,
        "daytwo.agent.name": "support",
        "daytwo.agent.version": 3,
        "daytwo.session.id": "café ☕",
        "tags": ("a", "b"),
    }
    try:
        for i, start in enumerate([t0, t0 + 1_000, t0 + 2_000, t0 + 1_000_000_000]):
            span = tracer.start_span(f"chat m {i}", start_time=start, attributes=attributes)
            span.end(end_time=start + 2_500_000)
        assert handle.flush()
        with store.session() as s:
            rows = {r.name: r for r in s.scalars(sa.select(SpanRow))}
    finally:
        handle.shutdown()
    first = rows["chat m 0"]
    assert first.start_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert first.end_time == datetime(2023, 11, 14, 22, 13, 20, 125956, tzinfo=UTC)
    assert first.duration_ms == pytest.approx(2.5)
    assert rows["chat m 3"].start_time == datetime(2023, 11, 14, 22, 13, 21, 123456, tzinfo=UTC)
    assert first.attributes == {**attributes, "tags": ["a", "b"]}
    assert first.session_id == "café ☕"
    assert first.agent == "support@3"
    assert (first.input_tokens, first.output_tokens) == (1000, 10)
    assert {r.cost_usd for r in rows.values()} == {"0.00102"}  # (1000 * 1 + 10 * 2) / 1e6
    # one question per model and second, at the whole second
    assert prices.asked == [
        ("m", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("m", datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)),
    ]


def test_a_large_batch_stores_every_span_with_its_empty_columns(store: Store) -> None:
    """Over several multi-row statements (and a tail of odd size), a column left empty is
    NULL, a value is the value, and nothing is lost or duplicated."""
    handle = setup_tracing(store, prices=_CountingPrices())
    tracer = trace.get_tracer("daytwo.test")
    n = 2500  # 2 statements of 1024 rows, then 453 padded to 512 (in one transaction)
    try:
        with tracer.start_as_current_span("run") as root:
            for i in range(n):
                attributes: dict[str, str | int] = {"i": i}
                if i % 3 == 0:
                    attributes |= {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "m",
                        "gen_ai.usage.input_tokens": i,
                        "gen_ai.usage.output_tokens": 0,
                        "daytwo.tenant": f"t{i % 2}",
                    }
                tracer.start_span(f"s{i}", attributes=attributes).end()
        assert handle.flush()
        with store.session() as s:
            rows = {r.name: r for r in s.scalars(sa.select(SpanRow))}
    finally:
        handle.shutdown()
    assert len(rows) == n + 1
    assert rows["run"].parent_span_id is None
    assert rows["run"].span_id == format(root.get_span_context().span_id, "016x")
    for i in range(n):
        row = rows[f"s{i}"]
        assert row.attributes["i"] == i
        assert row.parent_span_id == rows["run"].span_id
        assert row.status_message is None
        assert row.session_id is None
        if i % 3 == 0:
            assert (row.input_tokens, row.output_tokens) == (i, 0)
            assert row.tenant == f"t{i % 2}"
            assert row.cost_status == "priced"
            assert Decimal(row.cost_usd) == Decimal(i) / 1_000_000
        else:
            assert row.input_tokens is None
            assert row.output_tokens is None
            assert row.tenant is None
            assert row.model is None
            assert row.cost_status is None
            assert row.cost_usd is None
