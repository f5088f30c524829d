"""Prices and the cost of one span (exact ``Decimal`` arithmetic).

Prices belong to the model layer, which sits above tracing: it implements
:class:`PriceSource` (``daytwo.models.profiles.PriceBook``) and the tracing layer
takes one as a parameter. Only model-call spans (``gen_ai.operation.name`` in
:data:`~daytwo.tracing.attributes.COST_OPERATIONS`) and tool spans that report
``daytwo.tool.cost_usd`` carry a cost; wrapper spans never do, so roll-ups cannot
count anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, runtime_checkable

from daytwo.tracing.attributes import (
    COST_OPERATIONS,
    MODEL_PROFILE,
    OPERATION,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    TOOL_COST_USD,
    USAGE_CACHE_READ_INPUT,
    USAGE_INPUT,
    USAGE_OUTPUT,
    USAGE_REASONING_OUTPUT,
)

__all__ = [
    "MILLION",
    "CostStatus",
    "Price",
    "PriceSource",
    "SpanCost",
    "as_price",
    "span_cost",
    "token_cost",
]

MILLION = Decimal(1_000_000)

CostStatus = Literal["priced", "unknown"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens, in force from ``effective_from`` (set by the price source).

    ``cached_input_per_mtok`` prices input tokens read from the provider's prompt
    cache (default: the input price); ``reasoning_per_mtok`` prices reasoning tokens,
    which providers count inside the output tokens (default: the output price).
    """

    input_per_mtok: Decimal
    output_per_mtok: Decimal = Decimal(0)
    cached_input_per_mtok: Decimal | None = None
    reasoning_per_mtok: Decimal | None = None
    effective_from: datetime | None = None


@runtime_checkable
class PriceSource(Protocol):
    """Whatever knows model prices with effective dates (the model layer's PriceBook).

    ``price`` may return a :class:`Price` or any object with per-million-token fields
    named ``input``/``output``/``cached``/``reasoning`` (the model layer's pydantic
    ``Price``) or ``input_per_mtok``/...; see :func:`as_price`.
    """

    def price(self, model: str, at: datetime, /) -> Any:
        """The price of ``model`` in force at ``at``, or None when unknown."""
        ...


def _field(obj: Any, *names: str) -> Decimal | None:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return _decimal(value)
    return None


def as_price(obj: Any) -> Price | None:
    """A :class:`Price` from any price-like object (floats become exact decimals of their
    shortest repr), or None when it has no input price."""
    if obj is None or isinstance(obj, Price):
        return obj
    currency = getattr(obj, "currency", "USD")
    if currency not in (None, "USD"):
        return None  # the ledger is in USD; another currency is an unknown price
    price_in = _field(obj, "input_per_mtok", "input")
    if price_in is None:
        return None
    return Price(
        input_per_mtok=price_in,
        output_per_mtok=_field(obj, "output_per_mtok", "output") or Decimal(0),
        cached_input_per_mtok=_field(obj, "cached_input_per_mtok", "cached"),
        reasoning_per_mtok=_field(obj, "reasoning_per_mtok", "reasoning"),
    )


@dataclass(frozen=True)
class SpanCost:
    """The cost of one span: ``usd`` is None when ``status`` is ``unknown``."""

    status: CostStatus
    usd: Decimal | None


def _int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        # str() first: Decimal(0.1) would carry the binary float error into the ledger.
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def token_cost(price: Price, attributes: Mapping[str, Any]) -> Decimal:
    """Cost of the token usage recorded in ``attributes`` at ``price``."""
    tokens_in = _int(attributes.get(USAGE_INPUT))
    tokens_out = _int(attributes.get(USAGE_OUTPUT))
    cached = min(_int(attributes.get(USAGE_CACHE_READ_INPUT)), tokens_in)
    reasoning = min(_int(attributes.get(USAGE_REASONING_OUTPUT)), tokens_out)
    cached_rate = (
        price.cached_input_per_mtok
        if price.cached_input_per_mtok is not None
        else price.input_per_mtok
    )
    reasoning_rate = (
        price.reasoning_per_mtok if price.reasoning_per_mtok is not None else price.output_per_mtok
    )
    total = (
        (tokens_in - cached) * price.input_per_mtok
        + cached * cached_rate
        + (tokens_out - reasoning) * price.output_per_mtok
        + reasoning * reasoning_rate
    )
    return total / MILLION


def span_cost(
    attributes: Mapping[str, Any], at: datetime, prices: PriceSource | None
) -> SpanCost | None:
    """The cost of a span, or None when the span carries no cost (a wrapper).

    Model calls are priced from ``prices`` by ``daytwo.model.profile``, else the
    response model, else the requested model; with no price known they are
    ``unknown``, never $0. Tool
    spans with ``daytwo.tool.cost_usd`` cost what the tool reported.
    """
    operation = attributes.get(OPERATION)
    if operation in COST_OPERATIONS:
        price: Price | None = None
        if prices is not None:
            for key in (MODEL_PROFILE, RESPONSE_MODEL, REQUEST_MODEL):
                model = attributes.get(key)
                if isinstance(model, str) and model:
                    price = as_price(prices.price(model, at))
                    if price is not None:
                        break
        if price is None:
            return SpanCost("unknown", None)
        return SpanCost("priced", token_cost(price, attributes))
    if TOOL_COST_USD in attributes:
        usd = _decimal(attributes.get(TOOL_COST_USD))
        return SpanCost("unknown", None) if usd is None else SpanCost("priced", usd)
    return None
