"""Cost ledger: nested traces, roll-ups equal the exact sum of model-call costs, reprice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from opentelemetry import trace

from daytwo.store import Store
from daytwo.tracing import Price, setup_tracing
from daytwo.tracing.ledger import reprice, rollup, total

PRICES = {
    "gpt-x": Price(
        input=Decimal("2.50"), output=Decimal("10"), cached=Decimal("1.25"), reasoning=Decimal("12")
    ),
    "embed-x": Price(input=Decimal("0.02")),
}


class DictPrices:
    """A price source with one price per model, in force from 2020 on."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    def price(self, model: str, at: datetime, /) -> Price | None:
        return self.prices.get(model) if at.year >= 2020 else None


class FloatPrices:
    """Prices written as floats (as in profiles.yaml) become exact decimals."""

    def price(self, model: str, at: datetime, /) -> Price | None:
        return Price(input=0.15, output=0.6) if model == "mini" else None  # type: ignore[arg-type]


def _chat(model: str, tin: int, tout: int, cached: int = 0, reasoning: int = 0) -> None:
    tracer = trace.get_tracer("daytwo.models")
    with tracer.start_as_current_span(f"chat {model}") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": tin,
                "gen_ai.usage.output_tokens": tout,
                "gen_ai.usage.cache_read.input_tokens": cached,
                "gen_ai.usage.reasoning.output_tokens": reasoning,
            }
        )


def _expected(model: str, tin: int, tout: int, cached: int = 0, reasoning: int = 0) -> Decimal:
    p = PRICES[model]
    assert p.cached is not None
    assert p.reasoning is not None
    return (
        (tin - cached) * p.input
        + cached * p.cached
        + (tout - reasoning) * p.output
        + reasoning * p.reasoning
    ) / Decimal(1_000_000)


def _run(agent: str, principal: str, session: str, calls: list[tuple]) -> None:
    tracer = trace.get_tracer("daytwo.runtime")
    attrs = {
        "daytwo.run.id": f"run-{agent}-{principal}-{session}",
        "daytwo.agent.name": agent,
        "daytwo.agent.version": "1",
        "daytwo.principal": principal,
        "daytwo.session.id": session,
        "daytwo.tenant": "acme",
    }
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=attrs) as root:
        # A wrapper with usage totals must never be priced.
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.usage.input_tokens", 10**6)
        for i, call in enumerate(calls):
            with tracer.start_as_current_span(f"step {i}", attributes={"daytwo.step.id": str(i)}):
                if call[0] == "tool":
                    with tracer.start_as_current_span("execute_tool web") as t:
                        t.set_attribute("gen_ai.operation.name", "execute_tool")
                        t.set_attribute("daytwo.tool.cost_usd", call[1])
                elif call[0] == "embed":
                    with tracer.start_as_current_span("embeddings embed-x") as e:
                        e.set_attributes(
                            {
                                "gen_ai.operation.name": "embeddings",
                                "gen_ai.request.model": "embed-x",
                                "gen_ai.usage.input_tokens": call[1],
                            }
                        )
                else:
                    _chat(*call)


def test_rollups_equal_the_exact_sum_of_model_call_costs(store: Store) -> None:
    handle = setup_tracing(store, prices=DictPrices(PRICES))
    try:
        _run("a", "alice", "s1", [("gpt-x", 1000, 200, 300, 50), ("tool", "0.003")])
        _run("a", "bob", "s2", [("gpt-x", 7, 3), ("embed", 12345), ("unknown-model", 5, 5)])
        _run("b", "alice", "s1", [("gpt-x", 123457, 9999, 0, 1234), ("gpt-x", 1, 1)])
        handle.flush()
    finally:
        handle.shutdown()
    run1 = _expected("gpt-x", 1000, 200, 300, 50) + Decimal("0.003")
    run2 = _expected("gpt-x", 7, 3) + Decimal(12345) * Decimal("0.02") / Decimal(10**6)
    run3 = _expected("gpt-x", 123457, 9999, 0, 1234) + _expected("gpt-x", 1, 1)
    grand = run1 + run2 + run3

    by_query = rollup(store, "query")
    assert sorted(r.cost_usd for r in by_query) == sorted([run1, run2, run3])
    assert {r.label for r in by_query} == {"invoke_agent a", "invoke_agent b"}
    assert total(by_query).cost_usd == grand
    assert total(by_query).unpriced_spans == 1

    by_principal = {r.key: r for r in rollup(store, "principal")}
    assert by_principal["alice"].cost_usd == run1 + run3
    assert by_principal["bob"].cost_usd == run2
    assert by_principal["bob"].unpriced_spans == 1
    assert by_principal["bob"].priced_spans == 2

    by_agent = {r.key: r.cost_usd for r in rollup(store, "agent")}
    assert by_agent == {"a": run1 + run2, "b": run3}  # versions of one agent: one row
    by_session = {r.key: r.cost_usd for r in rollup(store, "session")}
    assert by_session == {"s1": run1 + run3, "s2": run2}
    by_model = {r.key: r for r in rollup(store, "model")}
    assert by_model["unknown-model"].cost_usd == 0
    assert by_model["unknown-model"].unpriced_spans == 1
    assert by_model[None].cost_usd == Decimal("0.003")  # the paid tool
    assert total(rollup(store, "day")).cost_usd == grand
    assert total(rollup(store, "tenant")).cost_usd == grand

    # A price appears for the unknown model: reprice fills it in, nothing else moves.
    new = dict(PRICES, **{"unknown-model": Price(input=Decimal("1"), output=Decimal("2"))})
    report = reprice(store, DictPrices(new), since=datetime.now(UTC) - timedelta(hours=1))
    assert report.changed == 1
    assert report.unpriced == 0
    assert report.spans == 7
    after = total(rollup(store, "query"))
    assert after.unpriced_spans == 0
    assert after.cost_usd == grand + (5 * Decimal(1) + 5 * Decimal(2)) / Decimal(10**6)
    assert reprice(store, DictPrices(new), since=datetime(2000, 1, 1, tzinfo=UTC)).changed == 0


def test_prices_written_as_floats_are_exact(sqlite_store: Store) -> None:
    handle = setup_tracing(sqlite_store, prices=FloatPrices())
    try:
        _chat("mini", 1_000_001, 3)
        handle.flush()
    finally:
        handle.shutdown()
    (r,) = rollup(sqlite_store, "model")
    assert r.cost_usd == (1_000_001 * Decimal("0.15") + 3 * Decimal("0.6")) / Decimal(10**6)


def test_without_prices_model_calls_are_unknown_not_zero(sqlite_store: Store) -> None:
    handle = setup_tracing(sqlite_store)
    try:
        _chat("gpt-x", 10, 10)
        handle.flush()
    finally:
        handle.shutdown()
    (r,) = rollup(sqlite_store, "query")
    assert r.priced_spans == 0
    assert r.unpriced_spans == 1


def test_a_foreign_cost_span_around_a_model_call_counts_once(sqlite_store: Store) -> None:
    """daytwo's layers never nest cost spans; a third-party "chat" span around the model
    layer's (instrumentation in the same process) is stored as a wrapper, never priced."""
    from daytwo.store.tables.tracing import SpanRow

    handle = setup_tracing(sqlite_store, prices=DictPrices(PRICES))
    tracer = trace.get_tracer("someframework")
    try:
        with tracer.start_as_current_span("chat gpt-x") as outer:
            outer.set_attributes({"gen_ai.operation.name": "chat", "daytwo.model.profile": "gpt-x"})
            with tracer.start_as_current_span("retry"):
                _chat("gpt-x", 1000, 100)
            outer.set_attributes(
                {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
            )
        handle.flush()
    finally:
        handle.shutdown()
    with sqlite_store.session() as s:
        statuses = sorted(str(x) for x in s.scalars(sa.select(SpanRow.cost_status)))
    assert statuses == ["None", "priced", "wrapper"]
    grand = total(rollup(sqlite_store, "query"))
    assert grand.cost_usd == _expected("gpt-x", 1000, 100)
    assert grand.priced_spans == 1
    # Repricing leaves wrappers alone.
    report = reprice(sqlite_store, DictPrices(PRICES), since=datetime(2000, 1, 1, tzinfo=UTC))
    assert report.spans == 1
    assert total(rollup(sqlite_store, "query")).cost_usd == grand.cost_usd


def test_token_counts_of_any_type_price_as_clamped_ints() -> None:
    """Ints go to Price.cost as they are (it clamps); anything else through the same
    normalisation as before: bools and junk count 0, numeric text and floats truncate."""
    from daytwo.tracing.pricing import span_cost, token_cost

    price = PRICES["gpt-x"]
    cases = [
        ({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 10}, (1000, 10, 0, 0)),
        ({"gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": 10}, (0, 10, 0, 0)),
        ({"gen_ai.usage.input_tokens": True, "gen_ai.usage.output_tokens": "7"}, (0, 7, 0, 0)),
        ({"gen_ai.usage.input_tokens": 12.9, "gen_ai.usage.output_tokens": "x"}, (12, 0, 0, 0)),
        (
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.usage.cache_read.input_tokens": 500,
                "gen_ai.usage.reasoning.output_tokens": -1,
            },
            (100, 50, 500, 0),
        ),
    ]
    for attrs, counts in cases:
        assert token_cost(price, attrs) == price.cost(*counts), attrs
    at = datetime(2024, 1, 1, tzinfo=UTC)
    unknown = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "nope"}
    first, second = span_cost(unknown, at, DictPrices(PRICES)), span_cost(unknown, at, None)
    assert first is not None
    assert (first.status, first.usd) == ("unknown", None)
    assert first == second
