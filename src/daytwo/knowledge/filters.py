"""Typed metadata filters: a small JSON language, validated, compiled to SQL.

The shape is Qdrant's (``must`` / ``should`` / ``must_not`` lists of conditions, a
condition nesting another filter), so a user of Qdrant writes what they know::

    {"must": [
        {"key": "lang", "match": {"value": "de"}},
        {"key": "year", "range": {"gte": 2019, "lt": 2023}},
        {"key": "published", "range": {"gte": "2024-01-01"}},
        {"key": "status", "match": {"any": ["open", "pending"]}},
        {"key": "owner", "exists": true},
        {"should": [{"key": "tier", "match": {"value": 1}},
                    {"key": "vip", "match": {"value": true}}]}
     ],
     "must_not": [{"key": "archived", "match": {"value": true}}]}

- ``must``: every condition holds (AND); ``should``: at least one holds (OR, when the
  list is not empty); ``must_not``: none holds (NOT).
- ``match.value`` (eq), ``match.any`` (in), ``match.except`` (the key is present with a
  value outside the list: ne / not in); ``range`` with ``gt`` / ``gte`` / ``lt`` / ``lte``
  on numbers, or on ISO-8601 dates and datetimes (``2024-01-01``,
  ``2024-01-01T12:00:00Z``; a naive time is UTC); ``exists`` true / false.
- Values are typed as JSON types them: ``1`` matches the number 1 (and 1.0), never the
  string ``"1"``; ``true`` matches the boolean. A metadata string that is an ISO-8601
  date is stored as a date too, so ranges on dates compare instants, not text.
- A flat object ``{"lang": "de", "year": 2020}`` (the older form) means a ``must`` of
  equalities; its values must be scalars.

Only scalar metadata values are indexed (strings, numbers, booleans; lists and objects
are kept on the document but cannot be filtered on). A filter is applied where the ACL
is (:func:`daytwo.knowledge.acl.permitted_clause`): it narrows the set of chunks both
indexes search, so a filtered search returns ``k`` hits whenever ``k`` matching hits
exist.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa

from daytwo.exceptions import InputError
from daytwo.store.tables.knowledge import KbDocMeta

__all__ = [
    "Filter",
    "classify",
    "filter_clause",
    "parse_filter",
    "typed_metadata",
]

Kind = Literal["str", "num", "bool", "date"]
MAX_CONDITIONS = 100
MAX_DEPTH = 8
MAX_VALUES = 1000
_BOOL_KEYS = frozenset({"must", "should", "must_not"})
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_HINT = (
    'e.g. {"must": [{"key": "year", "range": {"gte": 2020}}]} (see the query language in README.md)'
)


@dataclass(frozen=True)
class Value:
    """A typed scalar: its kind, its text as stored, and its number (numbers, dates)."""

    kind: Kind
    text: str
    num: float | None = None


def _epoch(text: str) -> float | None:
    """Seconds since the epoch of an ISO-8601 date or datetime (naive = UTC), else None."""
    if len(text) > 40 or not _DATE.match(text):
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


def classify(value: Any) -> Value | None:
    """The typed form of a scalar metadata value (None for lists, objects, NaN, null)."""
    if isinstance(value, bool):
        return Value("bool", "true" if value else "false")
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            return None
        return Value("num", str(value)[:500], number)
    if isinstance(value, str):
        text = value[:500]
        when = _epoch(text)
        return Value("date", text, when) if when is not None else Value("str", text)
    return None


def typed_metadata(metadata: Mapping[str, Any]) -> dict[str, Value]:
    """The filterable part of a document's metadata: its scalar values, typed."""
    out: dict[str, Value] = {}
    for key, raw in metadata.items():
        value = classify(raw)
        if value is not None:
            out[str(key)[:200]] = value
    return out


@dataclass(frozen=True)
class Match:
    """``match``: ``value`` / ``any`` (op ``in``) or ``except`` (op ``except``)."""

    key: str
    op: Literal["in", "except"]
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Range:
    """``range``: bounds on numbers (kind ``num``) or instants (kind ``date``)."""

    key: str
    kind: Kind
    bounds: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Exists:
    """``exists``: the key is (or is not) present with a scalar value."""

    key: str
    present: bool


@dataclass(frozen=True)
class Filter:
    """A boolean combination of conditions (the parsed, validated filter)."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def canonical(self) -> str:
        """A stable text of the filter (cache keys, cursors, decision records)."""
        return json.dumps(_dump(self), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """The filter in the documented JSON shape."""
        out: dict[str, Any] = _dump(self)
        return out


Condition = Match | Range | Exists | Filter


def _dump(node: Condition) -> Any:
    if isinstance(node, Filter):
        return {
            name: [_dump(c) for c in getattr(node, name)]
            for name in ("must", "should", "must_not")
            if getattr(node, name)
        }
    if isinstance(node, Match):
        raw = [_raw(v) for v in node.values]
        if node.op == "except":
            return {"key": node.key, "match": {"except": raw}}
        return {"key": node.key, "match": {"any": raw} if len(raw) != 1 else {"value": raw[0]}}
    if isinstance(node, Range):
        return {
            "key": node.key,
            "range": {op: _raw(Value(node.kind, "", num)) for op, num in node.bounds},
        }
    return {"key": node.key, "exists": node.present}


def _raw(value: Value) -> Any:
    if value.kind == "bool":
        return value.text == "true"
    if value.kind == "num":
        number = value.num if value.num is not None else 0.0
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if value.kind == "date" and not value.text:
        return datetime.fromtimestamp(value.num or 0.0, UTC).isoformat()
    return value.text


class _Budget:
    def __init__(self) -> None:
        self.conditions = 0


def parse_filter(data: Any) -> Filter | None:
    """Validate a filter (JSON value) and return its parsed form; None for no filter.

    Raises :class:`~daytwo.exceptions.InputError` naming the offending part.
    """
    if data is None:
        return None
    if isinstance(data, Filter):
        return data
    if not isinstance(data, Mapping):
        raise InputError(f"a filter is a JSON object, not {type(data).__name__}", hint=_HINT)
    if not data:
        return None
    budget = _Budget()
    if set(data) <= _BOOL_KEYS:
        parsed = _parse_bool(data, "filter", 0, budget)
    else:
        parsed = _parse_flat(data, budget)
    return parsed if (parsed.must or parsed.should or parsed.must_not) else None


def _parse_flat(data: Mapping[str, Any], budget: _Budget) -> Filter:
    must: list[Condition] = []
    for key, raw in data.items():
        where = f"filter[{key!r}]"
        _check_key(key, where)
        if isinstance(raw, (Mapping, list)) or raw is None:
            raise InputError(
                f"{where}: the flat form takes scalar values only",
                hint='use the structured form, e.g. {"must": [{"key": "lang", '
                '"match": {"any": ["de", "fr"]}}]}',
            )
        budget.conditions += 1
        must.append(Match(key, "in", (_value(raw, where),)))
    _check_budget(budget)
    return Filter(must=tuple(must))


def _parse_bool(data: Mapping[str, Any], where: str, depth: int, budget: _Budget) -> Filter:
    if depth > MAX_DEPTH:
        raise InputError(f"{where}: filters nest at most {MAX_DEPTH} levels deep", hint=_HINT)
    parts: dict[str, tuple[Condition, ...]] = {}
    for name in ("must", "should", "must_not"):
        items = data.get(name, [])
        if isinstance(items, Mapping):  # Qdrant accepts one condition without a list
            items = [items]
        if not isinstance(items, list):
            raise InputError(f"{where}.{name} must be a list of conditions", hint=_HINT)
        parts[name] = tuple(
            _parse_condition(item, f"{where}.{name}[{i}]", depth, budget)
            for i, item in enumerate(items)
        )
    return Filter(parts["must"], parts["should"], parts["must_not"])


def _parse_condition(item: Any, where: str, depth: int, budget: _Budget) -> Condition:
    if not isinstance(item, Mapping):
        raise InputError(f"{where} is not an object", hint=_HINT)
    budget.conditions += 1
    _check_budget(budget)
    if "key" not in item:
        if item and set(item) <= _BOOL_KEYS:
            return _parse_bool(item, where, depth + 1, budget)
        raise InputError(
            f"{where} has no 'key' (nor must/should/must_not)",
            hint=f"a condition names the metadata key; {_HINT}",
        )
    key = item["key"]
    _check_key(key, f"{where}.key")
    tests = [name for name in ("match", "range", "exists") if name in item]
    extra = set(item) - {"key", "match", "range", "exists"}
    if len(tests) != 1 or extra:
        wrong = sorted(extra)[0] if extra else "/".join(tests) or "nothing"
        raise InputError(
            f"{where}: expected exactly one of match, range, exists (got {wrong})",
            hint=_HINT,
        )
    if tests[0] == "exists":
        if not isinstance(item["exists"], bool):
            raise InputError(f"{where}.exists must be true or false", hint='{"exists": true}')
        return Exists(key, item["exists"])
    if tests[0] == "match":
        return _parse_match(key, item["match"], f"{where}.match")
    return _parse_range(key, item["range"], f"{where}.range")


def _parse_match(key: str, spec: Any, where: str) -> Match:
    if (
        not isinstance(spec, Mapping)
        or len(spec) != 1
        or next(iter(spec))
        not in {
            "value",
            "any",
            "except",
        }
    ):
        raise InputError(
            f"{where} must be one of {{value: V}}, {{any: [..]}}, {{except: [..]}}",
            hint='e.g. {"match": {"any": ["open", "pending"]}}',
        )
    op, raw = next(iter(spec.items()))
    if op == "value":
        return Match(key, "in", (_value(raw, f"{where}.value"),))
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}.{op} must be a non-empty list", hint='e.g. ["a", "b"]')
    if len(raw) > MAX_VALUES:
        raise InputError(f"{where}.{op} has {len(raw)} values", hint=f"at most {MAX_VALUES}")
    values = tuple(_value(v, f"{where}.{op}[{i}]") for i, v in enumerate(raw))
    return Match(key, "in" if op == "any" else "except", values)


def _parse_range(key: str, spec: Any, where: str) -> Range:
    if not isinstance(spec, Mapping) or not spec or set(spec) - set(_RANGE_OPS):
        raise InputError(
            f"{where} takes gt, gte, lt, lte (at least one)",
            hint='e.g. {"range": {"gte": 2019, "lt": 2023}}',
        )
    kinds: set[Kind] = set()
    bounds: list[tuple[str, float]] = []
    for op in _RANGE_OPS:
        if op not in spec:
            continue
        raw = spec[op]
        value = None if isinstance(raw, bool) else classify(raw)
        if value is None or value.kind not in {"num", "date"} or value.num is None:
            raise InputError(
                f"{where}.{op}: {json.dumps(raw, default=str)} is not a number or an ISO-8601 date",
                hint='ranges compare numbers or dates, e.g. {"gte": "2024-01-01"}',
            )
        kinds.add(value.kind)
        bounds.append((op, value.num))
    if len(kinds) > 1:
        raise InputError(
            f"{where} mixes a number and a date", hint="bound one range with one type of value"
        )
    return Range(key, kinds.pop(), tuple(bounds))


def _value(raw: Any, where: str) -> Value:
    value = classify(raw)
    if value is None:
        raise InputError(
            f"{where}: {json.dumps(raw, default=str)[:80]} is not a string, number or boolean",
            hint="metadata filters compare scalar values",
        )
    if isinstance(raw, str) and len(raw) > 500:
        raise InputError(f"{where}: the value is longer than 500 characters", hint="shorten it")
    if value.kind == "str" and "\x00" in value.text:
        raise InputError(f"{where}: the value contains a NUL character", hint="remove it")
    return value


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key or len(key) > 200 or "\x00" in key:
        raise InputError(
            f"{where}: a metadata key is a non-empty string of at most 200 characters",
            hint='e.g. "key": "lang"',
        )


def _check_budget(budget: _Budget) -> None:
    if budget.conditions > MAX_CONDITIONS:
        raise InputError(
            f"the filter has more than {MAX_CONDITIONS} conditions",
            hint="use match.any for long lists of values",
        )


# --- SQL -------------------------------------------------------------------------------


def filter_clause(
    node: Filter, collection: str, doc_id: sa.ColumnElement[str]
) -> sa.ColumnElement[bool]:
    """SQL condition that the document ``doc_id`` (a column) of ``collection`` matches."""
    parts: list[sa.ColumnElement[bool]] = [_condition(c, collection, doc_id) for c in node.must]
    if node.should:
        parts.append(sa.or_(*(_condition(c, collection, doc_id) for c in node.should)))
    if node.must_not:
        parts.append(sa.not_(sa.or_(*(_condition(c, collection, doc_id) for c in node.must_not))))
    return sa.and_(sa.true(), *parts)


def _condition(
    node: Condition, collection: str, doc_id: sa.ColumnElement[str]
) -> sa.ColumnElement[bool]:
    if isinstance(node, Filter):
        return filter_clause(node, collection, doc_id)
    meta = KbDocMeta.__table__.c
    where: list[sa.ColumnElement[bool]] = [
        meta.collection == collection,
        meta.doc_id == doc_id,
        meta.key == node.key,
    ]
    if isinstance(node, Exists):
        found = sa.exists(sa.select(sa.literal(1)).where(*where))
        return found if node.present else sa.not_(found)
    if isinstance(node, Match):
        test = _any_of(node.values)
        where.append(test if node.op == "in" else sa.not_(test))
    else:
        where.append(meta.kind == node.kind)
        column = meta.num
        for op, bound in node.bounds:
            where.append(
                {"gt": column > bound, "gte": column >= bound, "lt": column < bound}.get(
                    op, column <= bound
                )
            )
    return sa.exists(sa.select(sa.literal(1)).where(*where))


def _any_of(values: Sequence[Value]) -> sa.ColumnElement[bool]:
    """The stored (kind, value, num) equals one of ``values`` (typed equality)."""
    meta = KbDocMeta.__table__.c
    texts = sorted({v.text for v in values if v.kind in {"str", "date"}})
    numbers = sorted({v.num for v in values if v.kind == "num" and v.num is not None})
    flags = sorted({v.text for v in values if v.kind == "bool"})
    instants = sorted({v.num for v in values if v.kind == "date" and v.num is not None})
    tests: list[sa.ColumnElement[bool]] = []
    if texts:
        tests.append(sa.and_(meta.kind.in_(["str", "date"]), meta.value.in_(texts)))
    if instants:  # "2024-01-01" equals a stored "2024-01-01T00:00:00Z"
        tests.append(sa.and_(meta.kind == "date", meta.num.in_(instants)))
    if numbers:
        tests.append(sa.and_(meta.kind == "num", meta.num.in_(numbers)))
    if flags:
        tests.append(sa.and_(meta.kind == "bool", meta.value.in_(flags)))
    return sa.or_(*tests)
