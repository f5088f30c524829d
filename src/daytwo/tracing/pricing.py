"""Prices and the cost of one call or span (exact ``Decimal`` arithmetic).

:class:`Price` is the one price type of daytwo: the model layer's profiles hold
them (``profiles.yaml``), its ``PriceBook`` implements :class:`PriceSource`, and
:meth:`Price.cost` is the one cost function -- the runtime's budget meter and the
ledger (:func:`span_cost`) both call it, so a run's cost and the ledger's agree.
Only model-call spans (``gen_ai.operation.name`` in
:data:`~daytwo.tracing.attributes.COST_OPERATIONS`) and tool spans that report
``daytwo.tool.cost_usd`` carry a cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

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
    "CompiledPrice",
    "CostStatus",
    "Price",
    "PriceSource",
    "SpanCost",
    "span_cost",
    "token_cost",
]

MILLION = Decimal(1_000_000)

CostStatus = Literal["priced", "unknown"]

_Rate = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""USD per million tokens: exact in Python, a plain number in JSON (as written in YAML)."""


class Price(BaseModel):
    """USD (or ``currency``) per million tokens, in force from ``effective_from``.

    ``cached`` prices input tokens read from the provider's prompt cache (default:
    the input price); ``reasoning`` prices reasoning tokens, which providers count
    inside the output tokens (default: the output price). Floats from YAML become
    the exact decimals of their shortest repr.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: _Rate = Field(ge=0)
    output: _Rate = Field(default=Decimal(0), ge=0)
    cached: _Rate | None = Field(default=None, ge=0)
    reasoning: _Rate | None = Field(default=None, ge=0)
    currency: str = "USD"
    effective_from: date | None = None
    note: str | None = None

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Decimal:
        """Cost of one call: cached input at the cached rate, reasoning at its rate."""
        # Conditional expressions, not max()/min(): this runs for every stored model
        # span, and the builtins cost more than the Decimal arithmetic below.
        tokens_in = input_tokens if input_tokens > 0 else 0
        tokens_out = output_tokens if output_tokens > 0 else 0
        cached = cached_tokens if cached_tokens > 0 else 0
        cached = cached if cached < tokens_in else tokens_in
        reasoning = reasoning_tokens if reasoning_tokens > 0 else 0
        reasoning = reasoning if reasoning < tokens_out else tokens_out
        cached_rate = self.cached if self.cached is not None else self.input
        reasoning_rate = self.reasoning if self.reasoning is not None else self.output
        total = (
            (tokens_in - cached) * self.input
            + cached * cached_rate
            + (tokens_out - reasoning) * self.output
            + reasoning * reasoning_rate
        )
        return total / MILLION


@runtime_checkable
class PriceSource(Protocol):
    """Whatever knows model prices with effective dates (the model layer's PriceBook)."""

    def price(self, model: str, at: datetime, /) -> Price | None:
        """The price of ``model`` in force at ``at``, or None when unknown."""
        ...


@dataclass(frozen=True)
class SpanCost:
    """The cost of one span: ``usd`` is None when ``status`` is ``unknown``."""

    status: CostStatus
    usd: Decimal | None


def _int(value: Any) -> int:
    if type(value) is int:  # the usual case, first
        return value if value > 0 else 0
    if isinstance(value, bool) or value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if number > 0 else 0


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
    # Price.cost clamps negative counts itself: only non-int values need _int, and a
    # span's counts are almost always ints (absent ones are None and go through _int).
    get = attributes.get
    tokens_in, tokens_out = get(USAGE_INPUT), get(USAGE_OUTPUT)
    cached, reasoning = get(USAGE_CACHE_READ_INPUT), get(USAGE_REASONING_OUTPUT)
    return price.cost(
        tokens_in if type(tokens_in) is int else _int(tokens_in),
        tokens_out if type(tokens_out) is int else _int(tokens_out),
        cached if type(cached) is int else _int(cached),
        reasoning if type(reasoning) is int else _int(reasoning),
    )


_PREC_LIMIT = 10**27
"""Totals below this have fewer digits than the default decimal context's 28: the
``Decimal`` arithmetic of :meth:`Price.cost` is exact for them, as the integers are."""


@dataclass(frozen=True, slots=True)
class CompiledPrice:
    """A USD :class:`Price` as integers, for the cost text of many spans.

    Every rate is ``n * 10**exponent`` with one shared ``exponent`` (the smallest of
    the rates' exponents), so the cost of a call is an integer sum of products and
    its text is formatted from the digits: the same text as ``str(price.cost(...))``
    (``Decimal`` keeps the exponent the exact quotient allows, down to the rates'
    own), without ``Decimal`` arithmetic, which costs more than the rest of storing a
    span. Anything unusual (a total past the decimal context's precision, a cost
    below 1e-6 USD, which ``Decimal`` writes in scientific notation) takes the
    ``Decimal`` path.
    """

    price: Price
    input: int
    output: int
    cached: int
    reasoning: int
    exponent: int

    @classmethod
    def of(cls, price: Price) -> CompiledPrice | None:
        """The integer form of ``price``; None when it has none (then use ``Decimal``)."""
        rates = (
            price.input,
            price.output,
            price.cached if price.cached is not None else price.input,
            price.reasoning if price.reasoning is not None else price.output,
        )
        parts = [rate.as_tuple() for rate in rates]
        if any(p.sign or not isinstance(p.exponent, int) or p.exponent > 0 for p in parts):
            return None
        exponent = min(int(p.exponent) for p in parts)
        nums = [
            int("".join(map(str, p.digits)) or "0") * 10 ** (int(p.exponent) - exponent)
            for p in parts
        ]
        return cls(price, nums[0], nums[1], nums[2], nums[3], exponent)

    def cost_text(self, attributes: Mapping[str, Any]) -> str:
        """``str(token_cost(self.price, attributes))``, computed on integers."""
        get = attributes.get
        tokens_in, tokens_out = get(USAGE_INPUT), get(USAGE_OUTPUT)
        cached, reasoning = get(USAGE_CACHE_READ_INPUT), get(USAGE_REASONING_OUTPUT)
        # The clamping of Price.cost, on the same values token_cost gives it.
        tokens_in = tokens_in if type(tokens_in) is int and tokens_in > 0 else _int(tokens_in)
        tokens_out = tokens_out if type(tokens_out) is int and tokens_out > 0 else _int(tokens_out)
        cached = cached if type(cached) is int and cached > 0 else _int(cached)
        reasoning = reasoning if type(reasoning) is int and reasoning > 0 else _int(reasoning)
        cached = cached if cached < tokens_in else tokens_in
        reasoning = reasoning if reasoning < tokens_out else tokens_out
        total = (
            (tokens_in - cached) * self.input
            + cached * self.cached
            + (tokens_out - reasoning) * self.output
            + reasoning * self.reasoning
        )
        if total >= _PREC_LIMIT:
            return str(token_cost(self.price, attributes))
        # total * 10**exponent / 10**6, trailing zeros dropped down to the ideal
        # exponent (the rates'), as Decimal's exact division does.
        exponent = self.exponent - 6
        if total == 0:
            exponent = self.exponent
        else:
            while exponent < self.exponent and total % 10 == 0:
                total //= 10
                exponent += 1
        digits = str(total)
        if exponent == 0:
            return digits
        point = len(digits) + exponent
        if point - 1 < -6:  # Decimal's scientific notation: let it write that
            return str(token_cost(self.price, attributes))
        if point > 0:
            return f"{digits[:point]}.{digits[point:]}"
        return f"0.{'0' * -point}{digits}"


_UNKNOWN = SpanCost("unknown", None)
"""Shared: a frozen value, and one allocation fewer per unpriced span."""


def span_cost(
    attributes: Mapping[str, Any], at: datetime, prices: PriceSource | None
) -> SpanCost | None:
    """The cost of a span, or None when the span carries no cost.

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
                    price = prices.price(model, at)
                    if price is not None:
                        break
        if price is not None and price.currency != "USD":
            price = None  # the ledger is in USD: another currency is an unknown price
        if price is None:
            return _UNKNOWN
        return SpanCost("priced", token_cost(price, attributes))
    if TOOL_COST_USD in attributes:
        usd = _decimal(attributes.get(TOOL_COST_USD))
        return _UNKNOWN if usd is None else SpanCost("priced", usd)
    return None
