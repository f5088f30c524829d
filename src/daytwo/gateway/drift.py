"""Semantic drift: contract expectations plus a learned live profile per tool and field.

Two sources of evidence, checked on every response:

* **contract** — the field's declared expectation (type, range, enum, nullability,
  format). A violation is certain, so the first one raises an alert.
* **profile** — what the field looked like during the first ``warmup`` responses
  (type mix, numeric range, categories, null rate). A single outlier may be
  noise, so an alert needs ``threshold`` violations among the last ``window``
  responses; that keeps stable traffic free of false alarms.

The article's case — ``risk_score`` switching from a 0.0–1.0 float to
``"LOW"/"MEDIUM"/"HIGH"`` with HTTP 200 — is a contract ``type`` violation when
the contract declares the field, and a profile ``type`` drift otherwise.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from daytwo.gateway.contracts import Expectation

__all__ = ["DriftMonitor", "FieldProfile", "SharedProfiles", "Violation", "json_type"]

Source = Literal["contract", "profile"]

_MAX_CATEGORIES = 20
_NULL_WINDOW = 50


def json_type(value: Any) -> str:
    """The JSON type name of a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _get(data: dict[str, Any], path: str) -> Any:
    if path in data:
        return data[path]
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


@dataclass(frozen=True)
class Violation:
    """One field of one response that does not look like it should."""

    field: str
    kind: str
    source: Source
    detail: str


@dataclass
class FieldProfile:
    """The learned shape of one output field."""

    seen: int = 0
    types: dict[str, int] = field(default_factory=dict)
    numbers: list[float] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    learned: bool = False
    categorical: bool = False
    null_rate: float = 0.0

    def observe_warmup(self, value: Any) -> None:
        t = json_type(value)
        self.seen += 1
        self.types[t] = self.types.get(t, 0) + 1
        if _is_number(value) and math.isfinite(float(value)):
            self.numbers.append(float(value))
        elif isinstance(value, str) and len(self.categories) <= _MAX_CATEGORIES:
            self.categories[value] = self.categories.get(value, 0) + 1

    def learn(self) -> None:
        """Freeze the profile after warm-up: range with a margin, categories."""
        self.learned = True
        self.null_rate = self.types.get("null", 0) / max(self.seen, 1)
        if self.numbers:
            lo, hi = min(self.numbers), max(self.numbers)
            margin = 0.25 * (hi - lo) if hi > lo else max(abs(hi) * 0.25, 1e-9)
            self.low, self.high = lo - margin, hi + margin
        strings = self.types.get("string", 0)
        self.categorical = 0 < len(self.categories) <= _MAX_CATEGORIES and strings >= 10
        self.numbers = []

    def check(self, value: Any) -> tuple[str, str] | None:
        """(kind, detail) when the value does not fit the learned profile."""
        t = json_type(value)
        known = set(self.types)
        if t not in known and not (t == "integer" and "number" in known):
            return "type", f"type {t} never seen before (seen {sorted(known)})"
        if _is_number(value) and self.low is not None and self.high is not None:
            v = float(value)
            if not (self.low <= v <= self.high):
                return "range", f"{v:g} outside the learned range [{self.low:g}, {self.high:g}]"
        if self.categorical and isinstance(value, str) and value not in self.categories:
            return "category", f"value {value!r} not among the learned categories"
        return None

    def to_state(self) -> dict[str, Any]:
        """The learned profile as JSON (what another process needs to judge by it)."""
        return {
            "seen": self.seen,
            "types": dict(self.types),
            "categories": dict(self.categories),
            "low": self.low,
            "high": self.high,
            "categorical": self.categorical,
            "null_rate": self.null_rate,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FieldProfile:
        """A learned profile from :meth:`to_state`."""
        return cls(
            seen=int(state.get("seen", 0)),
            types={str(k): int(v) for k, v in dict(state.get("types", {})).items()},
            categories={str(k): int(v) for k, v in dict(state.get("categories", {})).items()},
            low=state.get("low"),
            high=state.get("high"),
            learned=True,
            categorical=bool(state.get("categorical", False)),
            null_rate=float(state.get("null_rate", 0.0)),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        total = max(self.seen, 1)
        return {
            "seen": self.seen,
            "type_mix": {k: round(v / total, 4) for k, v in sorted(self.types.items())},
            "null_rate": round(self.types.get("null", 0) / total, 4),
            "range": [self.low, self.high] if self.low is not None else None,
            "categories": sorted(self.categories) if self.categorical else None,
            "learned": self.learned,
        }


def check_expectation(exp: Expectation, value: Any) -> tuple[str, str] | None:
    """(kind, detail) when the value breaks its declared expectation."""
    if value is None:
        return None if exp.nullable else ("null", "is null or missing but is not nullable")
    if exp.type is not None:
        t = json_type(value)
        ok = t == exp.type or (exp.type == "number" and t == "integer")
        if not ok:
            return "type", f"expected {exp.type}, got {t} ({value!r:.40})"
    if _is_number(value):
        v = float(value)
        if exp.minimum is not None and v < exp.minimum:
            return "range", f"{v:g} below the minimum {exp.minimum:g}" + _unit(exp)
        if exp.maximum is not None and v > exp.maximum:
            return "range", f"{v:g} above the maximum {exp.maximum:g}" + _unit(exp)
    if exp.enum is not None and value not in exp.enum:
        return "enum", f"{value!r:.40} not in {exp.enum!r:.80}"
    if exp.format is not None and isinstance(value, str) and not re.fullmatch(exp.format, value):
        return "format", f"{value!r:.40} does not match {exp.format!r}"
    return None


def _unit(exp: Expectation) -> str:
    return f" ({exp.unit})" if exp.unit else ""


class _ToolState:
    def __init__(self, expectations: dict[str, Expectation], warmup: int) -> None:
        self.expectations = expectations
        self.warmup = warmup
        self.count = 0
        self.profiles: dict[str, FieldProfile] = {}
        self.windows: dict[tuple[str, str], deque[bool]] = {}
        self.open: set[tuple[str, str]] = set()
        self.nulls: dict[str, deque[bool]] = {}


class SharedProfiles(Protocol):
    """Where learned profiles and open alerts live for every process of a deployment."""

    def load(self, key: str) -> tuple[dict[str, dict[str, Any]] | None, set[tuple[str, str]]]:
        """(the learned profiles of ``key`` or None, its open alerts as (field, source:kind))."""
        ...

    def save(self, key: str, profiles: dict[str, dict[str, Any]]) -> None:
        """Keep the profiles learned for ``key`` (the first process to learn them wins)."""
        ...

    def alerted(self, key: str, name: str, kind: str) -> bool:
        """True when some process already raised the alert ``kind`` (source:kind) on ``name``."""
        ...


class DriftMonitor:
    """Checks responses against expectations and the learned profile; thread-safe.

    With ``shared``, a process that first sees a tool version starts from the profile
    another process already learned (no second warm-up) and with the alerts already
    open; a profile learned here is offered to the others. The sliding windows that
    decide a new profile alert stay per process.
    """

    def __init__(
        self, *, window: int = 10, threshold: int = 5, shared: SharedProfiles | None = None
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.shared = shared
        self._states: dict[str, _ToolState] = {}
        self._lock = threading.Lock()

    def _state(self, key: str, expectations: dict[str, Expectation], warmup: int) -> _ToolState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _ToolState(expectations, warmup)
            if self.shared is not None:
                learned, open_alerts = self.shared.load(key)
                state.open |= open_alerts
                if learned is not None:
                    state.profiles = {n: FieldProfile.from_state(p) for n, p in learned.items()}
                    state.count = warmup  # learned elsewhere: no warm-up here
        return state

    def check(
        self, key: str, output: dict[str, Any], expectations: dict[str, Expectation], warmup: int
    ) -> tuple[list[Violation], list[Violation], int]:
        """(violations of this response, new alerts, response index) for tool version ``key``.

        A response "drifts" when it has a contract violation or a profile
        violation of a kind already alerted on.
        """
        with self._lock:
            state = self._state(key, expectations, warmup)
            state.count += 1
            index = state.count
            drifting: list[Violation] = []
            alerts: list[Violation] = []
            for name, exp in expectations.items():
                found = check_expectation(exp, _get(output, name))
                if found is not None:
                    v = Violation(name, found[0], "contract", found[1])
                    drifting.append(v)
                    if self._opens(state, key, name, "contract:" + found[0]):
                        alerts.append(v)
            if index <= state.warmup:
                names = set(expectations) | {
                    k for k, v in output.items() if not isinstance(v, (dict, list))
                }
                for name in names:
                    prof = state.profiles.setdefault(name, FieldProfile())
                    prof.observe_warmup(_get(output, name))
                if index == state.warmup:
                    for prof in state.profiles.values():
                        prof.learn()
                    if self.shared is not None:
                        self.shared.save(key, {n: p.to_state() for n, p in state.profiles.items()})
                return drifting, alerts, index
            # New fields are a compatible change: only known fields are judged.
            for name in set(expectations) | set(state.profiles):
                value = _get(output, name)
                learned = state.profiles.get(name)
                if learned is None:
                    learned = FieldProfile()
                    state.profiles[name] = learned
                    learned.observe_warmup(None)  # absent during warm-up
                    learned.learn()
                found = learned.check(value)
                if found is None and learned.null_rate > 0:
                    found = self._null_rate(state, name, learned.null_rate, value is None)
                for kind in ("type", "range", "category", "null_rate"):
                    win = state.windows.get((name, kind))
                    hit = found is not None and found[0] == kind
                    if win is None:
                        if not hit:
                            continue
                        win = state.windows[(name, kind)] = deque(maxlen=self.window)
                    win.append(hit)
                if found is None:
                    continue
                kind, detail = found
                v = Violation(name, kind, "profile", detail)
                key2 = (name, "profile:" + kind)
                if key2 in state.open:
                    drifting.append(v)
                elif sum(state.windows[(name, kind)]) >= self.threshold:
                    drifting.append(v)
                    if self._opens(state, key, name, key2[1]):
                        alerts.append(v)
            return drifting, alerts, index

    def _null_rate(
        self, state: _ToolState, name: str, learned: float, is_null: bool
    ) -> tuple[str, str] | None:
        """A null-rate jump: of the last 50 responses, 40 points more null than learned."""
        win = state.nulls.get(name)
        if win is None:
            win = state.nulls[name] = deque(maxlen=_NULL_WINDOW)
        win.append(is_null)
        if not is_null or len(win) < _NULL_WINDOW:
            return None
        rate = sum(win) / _NULL_WINDOW
        if rate >= learned + 0.4:
            return (
                "null_rate",
                f"null in {rate:.0%} of the last {_NULL_WINDOW} (learned {learned:.0%})",
            )
        return None

    def _opens(self, state: _ToolState, key: str, name: str, kind: str) -> bool:
        """Open the alert; True when it is new here and in every other process."""
        if (name, kind) in state.open:
            return False
        state.open.add((name, kind))
        return self.shared is None or not self.shared.alerted(key, name, kind)

    def open_alert(self, key: str, name: str, kind: str) -> bool:
        """Mark an alert on ``name``/``kind`` of ``key`` open; True when it was not yet."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                return True
            return self._opens(state, key, name, kind)

    def profiles(self, key: str) -> dict[str, dict[str, Any]]:
        """The learned profile of every field of tool version ``key``."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                learned = self.shared.load(key)[0] if self.shared is not None else None
                return {
                    name: FieldProfile.from_state(p).as_dict()
                    for name, p in sorted((learned or {}).items())
                }
            return {name: p.as_dict() for name, p in sorted(state.profiles.items())}

    def responses(self, key: str) -> int:
        """How many responses of ``key`` were checked."""
        state = self._states.get(key)
        return state.count if state else 0

    def reset(self, key: str) -> None:
        """Forget the profile and open alerts of ``key`` (after an accepted change)."""
        with self._lock:
            self._states.pop(key, None)
