"""Semantic drift: the risk_score float -> category switch, unit change, block/adapt/flag."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import DriftBlocked
from daytwo.gateway import Gateway
from daytwo.gateway.drift import DriftMonitor

from .conftest import py_tool


class RiskBackend:
    """A risk API whose answer format the test switches, always with success."""

    def __init__(self, mode: str = "float", seed: int = 1) -> None:
        self.mode = mode
        self.rng = random.Random(seed)

    def __call__(self, account: str = "x") -> dict[str, Any]:
        score = self.rng.random()
        if self.mode == "category":
            value: Any = "LOW" if score < 0.4 else "MEDIUM" if score < 0.8 else "HIGH"
        elif self.mode == "percent":
            value = round(score * 100, 1)
        else:
            value = score
        return {"account": account, "risk_score": value}


def risk_tool(policy: str, *, expectations: bool = True, **extra: Any) -> dict[str, Any]:
    exp = {"risk_score": {"type": "number", "minimum": 0, "maximum": 1, "unit": "probability"}}
    return py_tool(
        "risk",
        "risk",
        capability="risk.score",
        expectations=exp if expectations else {},
        policy={"drift": policy, "warmup": 50},
        **extra,
    )


def test_float_to_category_switch_is_flagged_and_recorded(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    backend = RiskBackend()
    gateway.register_python("risk", backend)
    gateway.register(risk_tool("flag"))
    for _ in range(60):
        assert gateway.call("risk", {}).alerts == []
    backend.mode = "category"
    result = gateway.call("risk", {})
    assert isinstance(result.output["risk_score"], str)  # flag: passed through
    kinds = {(a.field, a.kind, a.source) for a in result.alerts}
    assert ("risk_score", "type", "contract") in kinds
    assert result.alerts[0].response_index == 61
    assert gateway.call("risk", {}).alerts == []  # alerted once, not on every response
    stored = gateway.drift_alerts("risk")
    assert {a["kind"] for a in stored} >= {"type"}
    assert all(a["action"] == "flag" for a in stored)
    events = [e for s in spans.get_finished_spans() for e in s.events]
    kinds_ev = [e.attributes["daytwo.decision.kind"] for e in events if e.name == "daytwo.decision"]
    assert "drift_alert" in kinds_ev


def test_block_policy_raises_a_typed_error(gateway: Gateway) -> None:
    backend = RiskBackend("category")
    gateway.register_python("risk", backend)
    gateway.register(risk_tool("block"))
    with pytest.raises(DriftBlocked, match="risk_score") as info:
        gateway.call("risk", {})
    assert info.value.context["violations"][0]["kind"] == "type"
    assert gateway.telemetry.snapshot("risk").error_rate == 1.0


def test_adapt_policy_applies_the_adapter(gateway: Gateway) -> None:
    backend = RiskBackend()
    gateway.register_python("risk", backend)
    adapter = {"version": 2, "value_maps": {"risk_score": {"LOW": 0.2, "MEDIUM": 0.5, "HIGH": 0.9}}}
    gateway.register(risk_tool("adapt", adapter=adapter))
    plain = gateway.call("risk", {})
    assert not plain.adapted
    assert isinstance(plain.output["risk_score"], float)
    backend.mode = "category"
    out = gateway.call("risk", {})
    assert out.adapted
    assert out.output["risk_score"] in {0.2, 0.5, 0.9}
    assert out.alerts
    assert out.alerts[0].action == "adapt"
    backend.mode = "percent"  # the adapter has no rule for this: blocked, not passed on
    with pytest.raises(DriftBlocked):
        for _ in range(5):
            gateway.call("risk", {})


def test_always_adapter_maps_a_renamed_backend_field(gateway: Gateway) -> None:
    gateway.register_python("risk", lambda: {"data": {"riskScore": 0.3}})
    adapter = {"version": 2, "always": True, "mapping": {"risk_score": "data.riskScore"}}
    gateway.register(risk_tool("block", adapter=adapter))
    out = gateway.call("risk", {})
    assert out.output["risk_score"] == 0.3
    assert out.alerts == []


def test_unit_change_caught_by_contract_range(gateway: Gateway) -> None:
    backend = RiskBackend()
    gateway.register_python("risk", backend)
    gateway.register(risk_tool("flag"))
    for _ in range(60):
        gateway.call("risk", {})
    backend.mode = "percent"
    delay = None
    for i in range(1, 21):
        if gateway.call("risk", {}).alerts:
            delay = i
            break
    assert delay is not None
    assert delay <= 3


def test_unit_change_caught_by_learned_profile_without_expectations() -> None:
    monitor = DriftMonitor()
    rng = random.Random(3)
    for _ in range(100):
        _, alerts, _ = monitor.check("t@1", {"risk_score": rng.random()}, {}, 100)
        assert alerts == []
    delay = None
    for i in range(1, 21):
        _, alerts, _ = monitor.check("t@1", {"risk_score": rng.random() * 100}, {}, 100)
        if alerts:
            assert alerts[0].kind == "range"
            assert alerts[0].source == "profile"
            delay = i
            break
    assert delay is not None
    assert delay <= 20
    profile = monitor.profiles("t@1")["risk_score"]
    assert profile["type_mix"] == {"number": 1.0}
    assert profile["learned"]


def test_category_switch_caught_by_learned_profile() -> None:
    monitor = DriftMonitor()
    backend = RiskBackend()
    for _ in range(100):
        monitor.check("t@1", backend(), {}, 100)
    backend.mode = "category"
    found = []
    for i in range(1, 21):
        _, alerts, _ = monitor.check("t@1", backend(), {}, 100)
        if alerts:
            found.append((i, alerts[0].kind))
            break
    assert found
    assert found[0][1] == "type"
    assert found[0][0] <= 20


def test_no_false_alarms_on_stable_responses() -> None:
    monitor = DriftMonitor()
    rng = random.Random(11)
    exp: dict[str, Any] = {}
    alerts_total = 0
    for _ in range(20_000):
        out = {
            "risk_score": rng.betavariate(2, 5),
            "latency": rng.gauss(100, 15),
            "tier": rng.choice(["gold", "silver", "bronze"]),
            "note": None if rng.random() < 0.1 else "ok",
        }
        _, alerts, _ = monitor.check("t@1", out, exp, 100)
        alerts_total += len(alerts)
    assert alerts_total == 0


def test_null_rate_jump_is_caught_and_new_fields_are_not_alarms() -> None:
    monitor = DriftMonitor()
    rng = random.Random(8)
    for _ in range(100):
        out = {"carrier": None if rng.random() < 0.1 else "DHL", "eta": rng.randint(0, 5)}
        assert monitor.check("t@1", out, {}, 100)[1] == []
    for _ in range(200):  # a new field appears: compatible, no alert
        out = {"carrier": None if rng.random() < 0.1 else "DHL", "eta": 1, "extra": rng.random()}
        assert monitor.check("t@1", out, {}, 100)[1] == []
    found = None
    for i in range(1, 101):
        out = {"carrier": None if rng.random() < 0.9 else "DHL", "eta": 1}
        alerts = monitor.check("t@1", out, {}, 100)[1]
        if alerts:
            found = (i, alerts[0].kind)
            break
    assert found is not None
    assert found[1] == "null_rate"
    assert found[0] <= 50


def test_output_schema_violations_alert_once(gateway: Gateway) -> None:
    gateway.register_python("risk", lambda: {"risk_score": "HIGH"})
    tool = risk_tool("flag", expectations=False)
    tool["output_schema"] = {"type": "object", "properties": {"risk_score": {"type": "number"}}}
    gateway.register(tool)
    first = gateway.call("risk", {})
    assert [(a.field, a.kind) for a in first.alerts] == [("(schema)", "schema")]
    assert all(gateway.call("risk", {}).alerts == [] for _ in range(5))
    assert len(gateway.drift_alerts("risk")) == 1


def test_a_second_gateway_process_judges_by_the_profile_another_learned(
    gateway: Gateway, sqlite_store: Any
) -> None:
    """Two gateways on one store (two worker processes): one warm-up, one alert."""
    backend = RiskBackend()
    gateway.register_python("risk", backend)
    # No contract expectations: only the learned profile can see the drift.
    gateway.register(risk_tool("flag", expectations=False))
    for _ in range(50):
        gateway.call("risk", {})  # warm-up here, in "process" A
    other = Gateway(sqlite_store)  # process B: never saw a response of this tool
    other.register_python("risk", backend)
    assert other.drift.profiles("risk@1.0.0")["risk_score"]["learned"]
    first = other.call("risk", {})
    assert first.alerts == []
    # B judges by A's profile at once: categories instead of floats drift (type).
    backend.mode = "category"
    alerts_b = [a for _ in range(10) for a in other.call("risk", {}).alerts]
    assert [(a.field, a.kind, a.source) for a in alerts_b] == [("risk_score", "type", "profile")]
    # A sees the same drift, but the alert is already open: no duplicate.
    alerts_a = [a for _ in range(10) for a in gateway.call("risk", {}).alerts]
    assert alerts_a == []
    assert len(gateway.drift_alerts("risk")) == 1


def test_profiles_are_per_process_without_a_shared_store() -> None:
    monitor = DriftMonitor()
    assert monitor.shared is None
    assert monitor.profiles("t@1") == {}
