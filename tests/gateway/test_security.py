"""Security: vault, OAuth2, agent keys and permissions, audit, rate limits, SSRF, HTTP backend."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from daytwo.exceptions import (
    BackendError,
    BackendTimeout,
    ConfigError,
    NotFoundError,
    PermissionDenied,
    SsrfBlocked,
    ToolRateLimited,
)
from daytwo.gateway import CredentialVault, Gateway
from daytwo.gateway.policies import SsrfGuard
from daytwo.gateway.samples import register_samples
from daytwo.gateway.vault import vault_key
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.tracing.audit import AuditLog

from .conftest import LoopbackServer, json_response

SECRET = "sk-PLANTED-" + uuid.uuid4().hex


def test_vault_roundtrip_and_wrong_key(sqlite_store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    key = vault_key(settings)
    key_file = tmp_path / "d" / "secret.key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert vault_key(settings) == key
    vault = CredentialVault(sqlite_store, key)
    vault.put("token", SECRET)
    assert vault.get("token") == SECRET
    assert vault.names() == ["token"]
    with sqlite_store.engine.connect() as conn:
        raw = conn.execute(text("SELECT ciphertext FROM gateway_secrets")).scalar_one()
    assert SECRET.encode() not in raw
    other = CredentialVault(
        sqlite_store, vault_key(Settings(secret_key="another key of 32 chars!!"))
    )
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other.get("token")
    with pytest.raises(NotFoundError, match="not in the vault"):
        vault.get("missing")
    with pytest.raises(ConfigError, match="too short"):
        vault_key(Settings(secret_key="short"))


def test_agent_keys_permissions_and_audited_denials(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    register_samples(gateway)
    key = gateway.create_agent("support", ["orders_status_cached"])
    other = gateway.create_agent("ops", ["cap:orders.*"])
    with gateway.store.session() as s:
        stored = s.execute(text("SELECT key_hash FROM gateway_agents")).scalars().all()
    assert key not in stored
    assert gateway.call("orders_status_cached", {"order_id": "A-1001"}, api_key=key).output
    assert gateway.call("orders_status_live", {"order_id": "A-1003"}, api_key=other, version="1")
    with pytest.raises(PermissionDenied, match="may not call orders_status_live"):
        gateway.call("orders_status_live", {"order_id": "A-1001"}, api_key=key)
    with pytest.raises(PermissionDenied, match="API key is not valid"):
        gateway.call("orders_status_cached", {"order_id": "A-1001"}, api_key="dt_forged")
    with pytest.raises(PermissionDenied, match="belongs to agent 'support'"):
        gateway.call("orders_status_cached", {"order_id": "A-1001"}, api_key=key, agent="ops")
    records = [r for r in AuditLog(gateway.store).records() if r.kind == "gateway.denied"]
    assert [(r.actor, r.subject) for r in records][:2] == [
        ("support", "orders_status_live"),
        ("anonymous", "orders_status_cached"),
    ]
    denials = [
        e
        for s in spans.get_finished_spans()
        for e in s.events
        if e.name == "daytwo.decision" and e.attributes["daytwo.decision.kind"] == "policy_denial"
    ]
    assert len(denials) == 3
    strict = Gateway(gateway.store, require_auth=True)
    with pytest.raises(PermissionDenied, match="requires an API key"):
        strict.call("orders_status_cached", {"order_id": "A-1001"})
    strict.close()


def test_rate_limits_per_tool_and_per_agent(gateway: Gateway) -> None:
    gateway.register_python("ok", lambda: {"ok": True})
    gateway.register(
        {
            "name": "limited",
            "capability": "test.limited",
            "version": "1.0.0",
            "backend": {"type": "python", "callable": "ok"},
            "policy": {"rate_limit": "3/minute"},
        }
    )
    for _ in range(3):
        gateway.call("limited", {})
    with pytest.raises(ToolRateLimited, match="exceeded its rate limit 3/minute") as info:
        gateway.call("limited", {})
    assert 0 < info.value.retry_after <= 60
    gateway.register_python("ok2", lambda: {"ok": True})
    gateway.register(
        {
            "name": "free",
            "capability": "test.free",
            "version": "1.0.0",
            "backend": {"type": "python", "callable": "ok2"},
        }
    )
    key = gateway.create_agent("chatty", ["free"], rate_limit="2/minute")
    gateway.call("free", {}, api_key=key)
    gateway.call("free", {}, api_key=key)
    with pytest.raises(ToolRateLimited, match="agent 'chatty'"):
        gateway.call("free", {}, api_key=key)
    gateway.call("free", {})  # other principals are not limited by chatty's budget


_WORKER = """
import json, sys
from daytwo.exceptions import PermissionDenied
from daytwo.gateway import Gateway
from daytwo.store import Store
store = Store(sys.argv[1])
gw = Gateway(store, rate_limit_storage=sys.argv[2], namespace=sys.argv[3])
ok = limited = 0
for _ in range(15):
    try:
        gw.call("orders_status_cached", {"order_id": "A-1001"})
        ok += 1
    except PermissionDenied:
        limited += 1
gw.close()
print(json.dumps({"ok": ok, "limited": limited}))
"""


@pytest.mark.redis
@pytest.mark.slow
def test_redis_rate_limit_shared_by_two_processes(
    sqlite_store: Store, sqlite_url: str, redis_url: str
) -> None:
    gw = Gateway(sqlite_store)
    from daytwo.gateway.samples import sample_definitions

    d = sample_definitions()[0].model_dump(mode="json")
    d["policy"] = {"rate_limit": "12/minute"}
    gw.register(d)
    gw.close()
    namespace = "t" + uuid.uuid4().hex[:10]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, sqlite_url, redis_url, namespace],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["ok"] for r in results) == 12
    assert sum(r["limited"] for r in results) == 18


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://192.168.0.1/",
        "http://localhost/x",
    ],
)
def test_ssrf_guard_blocks_internal_targets(url: str) -> None:
    with pytest.raises(SsrfBlocked, match="internal address"):
        SsrfGuard().check(url)


def test_ssrf_guard_allow_list() -> None:
    SsrfGuard(["127.0.0.1"]).check("http://127.0.0.1:9/x")
    SsrfGuard(["10.0.0.0/8"]).check("http://10.1.2.3/x")
    with pytest.raises(SsrfBlocked):
        SsrfGuard(["10.0.0.0/8"]).check("http://192.168.1.1/x")


def http_tool(url: str, method: str = "GET", **backend: Any) -> dict[str, Any]:
    return {
        "name": "remote",
        "capability": "test.remote",
        "version": "1.0.0",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        "backend": {"type": "http", "method": method, "url": url, **backend},
    }


def test_http_backend_blocked_without_allow_list(sqlite_store: Store, http_server: Any) -> None:
    server = http_server(lambda *a: json_response({"ok": True}))
    gw = Gateway(sqlite_store)
    with pytest.raises(SsrfBlocked):
        gw.register(http_tool(server.url + "/x"))
    with Gateway(sqlite_store, ssrf_allow=["127.0.0.1"]) as allowed:
        allowed.register(http_tool(server.url + "/x"))
    with pytest.raises(SsrfBlocked):
        gw.call("remote", {})
    assert server.requests == []
    gw.close()


def test_http_backend_retries_idempotent_calls_only(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    answers = iter([503, 503, 200] + [503] * 10)

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        status = next(answers)
        return json_response({"id": path, "method": method} if status == 200 else {}, status)

    server = http_server(handler)
    gateway.register(http_tool(server.url + "/items/{id}", params={"id": "path"}))
    out = gateway.call("remote", {"id": "a b"})
    assert out.output == {"id": "/items/a%20b", "method": "GET"}
    assert len(server.requests) == 3
    gateway.register(http_tool(server.url + "/items", method="POST") | {"version": "2.0.0"})
    with pytest.raises(BackendError, match="after 1 attempt"):
        gateway.call("remote", {"id": "x"}, version="2")
    assert len(server.requests) == 4
    assert json.loads(server.requests[-1]["body"]) == {"id": "x"}


def test_http_backend_timeout_and_non_json(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    def slow(*a: Any) -> Any:
        time.sleep(0.5)
        return json_response({})

    server = http_server(slow)
    gateway.register(http_tool(server.url + "/slow", timeout_s=0.1, retries=0))
    with pytest.raises(BackendTimeout, match=r"timed out after 0\.1 s"):
        gateway.call("remote", {})
    html = http_server(lambda *a: (200, {"content-type": "text/html"}, b"<html>oops</html>"))
    gateway.register(http_tool(html.url + "/h") | {"version": "2.0.0"})
    with pytest.raises(BackendError, match="answered non-JSON"):
        gateway.call("remote", {}, version="2")
    assert gateway.telemetry.snapshot("remote").error_rate == 1.0


def test_oauth2_client_credentials_cached_and_refreshed_and_secret_never_leaks(
    sqlite_store: Store,
    tmp_path: Path,
    http_server: Callable[..., LoopbackServer],
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []
    issued_at: list[float] = []

    def token_server(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        user, _, pw = base64.b64decode(headers["authorization"].split()[1]).decode().partition(":")
        if (user, pw) != ("client-1", SECRET):
            return json_response({"error": "invalid_client"}, 401)
        token = f"tok-{len(issued)}"
        issued.append(token)
        issued_at.append(time.monotonic())
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": 6})

    seen: list[str] = []

    def api(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        seen.append(headers.get("authorization", ""))
        return json_response({"ok": True})

    tokens = http_server(token_server)
    backend = http_server(api)
    settings = Settings(data_dir=tmp_path / "data")
    gw = Gateway(sqlite_store, settings, ssrf_allow=["127.0.0.1"])
    assert gw.vault is not None
    gw.vault.put("client-secret", SECRET)
    gw.tokens.refresh_margin_s = 3.0  # refresh 3 s before expiry (tokens live 6 s)
    gw.register(
        http_tool(
            backend.url + "/r",
            auth={
                "type": "oauth2_client_credentials",
                "token_url": tokens.url + "/token",
                "client_id": "client-1",
                "client_secret": "client-secret",
            },
        )
    )
    gw.call("remote", {})
    gw.call("remote", {})
    assert issued == ["tok-0"]  # cached
    # Within the refresh margin: a new token before the old one expires. (The two calls
    # above have 3 s to find the token cached, enough on a loaded CI machine.)
    time.sleep(max(0.0, issued_at[0] + 3.1 - time.monotonic()))
    gw.call("remote", {})
    assert issued == ["tok-0", "tok-1"]
    assert seen == ["Bearer tok-0", "Bearer tok-0", "Bearer tok-1"]
    gw.vault.put("api-token", SECRET)
    gw.register(
        http_tool(backend.url + "/b", auth={"type": "bearer", "secret": "api-token"})
        | {"version": "2.0.0"}
    )
    gw.call("remote", {}, version="2")
    assert seen[-1] == f"Bearer {SECRET}"  # the secret was really used ...
    echo = http_server(lambda m, p, h, b: (403, {}, f"bad key {h['authorization']}".encode()))
    gw.register(
        http_tool(echo.url + "/e", auth={"type": "bearer", "secret": "api-token"})
        | {"version": "3.0.0"}
    )
    with pytest.raises(BackendError, match=r"HTTP 403: 'bad key Bearer \*\*\*'") as info:
        gw.call("remote", {}, version="3")
    assert SECRET not in str(info.value)
    gw.close()
    assert SECRET not in caplog.text  # ... but never logged
    for span in spans.get_finished_spans():
        assert SECRET not in json.dumps(dict(span.attributes or {}), default=str)
        for event in span.events:
            assert SECRET not in json.dumps(dict(event.attributes or {}), default=str)
    with sqlite_store.engine.connect() as conn:
        for table in ("gateway_tools", "gateway_calls", "gateway_drift_alerts", "audit_records"):
            exists = conn.execute(
                text("SELECT name FROM sqlite_master WHERE name=:t"), {"t": table}
            ).first()
            if exists:
                dump = json.dumps(
                    [list(r) for r in conn.execute(text(f"SELECT * FROM {table}"))], default=str
                )
                assert SECRET not in dump


def test_secret_key_from_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from daytwo.settings import load_settings

    monkeypatch.setenv("DAYTWO_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "nd"))
    key = vault_key(load_settings())
    assert len(key) == 32
    assert not (tmp_path / "nd" / "secret.key").exists()
    assert os.environ["DAYTWO_SECRET_KEY"] not in repr(load_settings())


def test_in_process_agent_names(gateway: Gateway, spans: InMemorySpanExporter) -> None:
    register_samples(gateway)
    gateway.create_agent("support", ["orders_status_cached"])
    # a registered agent's permissions apply to trusted in-process calls too
    with pytest.raises(PermissionDenied, match="may not call"):
        gateway.call("orders_status_live", {"order_id": "A-1001"}, agent="support")
    # an unregistered name gets what an anonymous call gets: allowed unless auth is required
    out = gateway.call("orders_status_cached", {"order_id": "A-1001"}, agent="runtime-x")
    assert out.output["status"] == "shipped"
    span = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")][-1]
    assert span.attributes["daytwo.agent.name"] == "runtime-x"
    strict = Gateway(gateway.store, require_auth=True)
    with pytest.raises(PermissionDenied, match="unknown agent 'runtime-x'"):
        strict.call("orders_status_cached", {"order_id": "A-1001"}, agent="runtime-x")
    strict.close()
