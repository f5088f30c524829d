"""CompiledPrice: the integer cost text the span store writes equals the Decimal one."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from daytwo.tracing import attributes as A
from daytwo.tracing.pricing import CompiledPrice, Price, token_cost

_RATES = ["0", "0.0", "0.000", "0.15", "0.6", "0.075", "1", "2.5", "10", "15.00", "0.0001", "3.125"]
_TOKENS: list[Any] = [0, 1, 3, 7, 10, 100, 1234, 10**6, 10**7 + 3, -5, None, "12", 2.5, True]


def _random_case(rnd: random.Random) -> tuple[Price, dict[str, Any]]:
    rates: dict[str, Decimal] = {
        "input": Decimal(rnd.choice(_RATES)),
        "output": Decimal(rnd.choice(_RATES)),
    }
    if rnd.random() < 0.5:
        rates["cached"] = Decimal(rnd.choice(_RATES))
    if rnd.random() < 0.3:
        rates["reasoning"] = Decimal(rnd.choice(_RATES))
    attrs = {A.USAGE_INPUT: rnd.choice(_TOKENS), A.USAGE_OUTPUT: rnd.choice(_TOKENS)}
    if rnd.random() < 0.5:
        attrs[A.USAGE_CACHE_READ_INPUT] = rnd.choice(_TOKENS)
    if rnd.random() < 0.3:
        attrs[A.USAGE_REASONING_OUTPUT] = rnd.choice(_TOKENS)
    if rnd.random() < 0.2:
        attrs[A.USAGE_INPUT] = rnd.randrange(10**7)
    return Price(**rates), attrs


def test_cost_text_is_the_decimal_text() -> None:
    rnd = random.Random(16)
    for _ in range(20_000):
        price, attrs = _random_case(rnd)
        compiled = CompiledPrice.of(price)
        assert compiled is not None, price
        assert compiled.cost_text(attrs) == str(token_cost(price, attrs)), (price, attrs)


@pytest.mark.parametrize(
    ("rates", "tokens", "text"),
    [
        ({"input": "0.15", "output": "0.6"}, (1000, 100), "0.00021"),
        ({"input": "0.15", "output": "0.6"}, (0, 0), "0.00"),  # the rates' exponent
        ({"input": "1", "output": "2"}, (1000, 10), "0.00102"),
        ({"input": "3", "output": "15"}, (10**6, 10**6), "18"),
        ({"input": "0.15", "output": "0.6"}, (1, 0), "1.5E-7"),  # Decimal's notation
        ({"input": "0.15", "output": "0.6"}, (10**26, 0), "15000000000000000000.00"),
        ({"input": "0.15", "output": "0.6"}, (10**27, 0), "150000000000000000000.0"),  # 28 digits
    ],
)
def test_cost_text_examples(rates: dict[str, str], tokens: tuple[int, int], text: str) -> None:
    price = Price(**{k: Decimal(v) for k, v in rates.items()})
    compiled = CompiledPrice.of(price)
    assert compiled is not None
    attrs = {A.USAGE_INPUT: tokens[0], A.USAGE_OUTPUT: tokens[1]}
    assert compiled.cost_text(attrs) == text == str(token_cost(price, attrs))


def test_rates_with_a_positive_exponent_take_the_decimal_path() -> None:
    assert CompiledPrice.of(Price(input=Decimal("1E+1"))) is None
    assert CompiledPrice.of(Price(input=Decimal("10"))) is not None


@pytest.mark.parametrize("first", ["a", None])
def test_padded_statements_store_exactly_the_rows(first: str | None) -> None:
    """Chunks padded to a power of two skip the padding, and rows whose first value is
    None (which padding could not be told from) are stored too, without padding."""
    import sqlite3

    from daytwo.tracing.processor import _sqlite_statements

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a TEXT, b INTEGER, at TEXT)")
    rows = [[first, i, 1_700_000_000_123_456_789 + i * 1000] for i in range(1500)]
    statements = _sqlite_statements(db, "t", ["a", "b", "at"], rows, (2,))
    for sql, values in statements:
        db.execute(sql, values)
    assert len(statements) == 2
    assert db.execute("SELECT count(*), sum(b) FROM t").fetchone() == (1500, sum(range(1500)))
    assert db.execute("SELECT at FROM t WHERE b = 1").fetchone() == ("2023-11-14 22:13:20.123457",)
