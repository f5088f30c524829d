"""Calls to backends: the idempotency key sent along, Retry-After, OAuth2 refresh on 401."""

from __future__ import annotations

import base64
import email.utils
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daytwo.exceptions import BackendError
from daytwo.gateway import Gateway
from daytwo.gateway.backends import parse_retry_after
from daytwo.settings import Settings
from daytwo.store import Store

from .conftest import LoopbackServer, json_response

HERE = Path(__file__).parent


def http_tool(url: str, method: str = "GET", **backend: Any) -> dict[str, Any]:
    return {
        "name": "remote",
        "capability": "test.remote",
        "version": "1.0.0",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        "backend": {"type": "http", "method": method, "url": url, **backend},
    }


def test_http_backend_gets_the_idempotency_key_on_every_attempt(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    answers = iter([503, 200, 200])

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        return json_response({"ok": True}, next(answers))

    server = http_server(handler)
    gateway.register(http_tool(server.url + "/orders", method="POST", retries=2))
    out = gateway.call("remote", {"id": "a"}, idempotency_key="run-1:step-charge")
    assert out.output == {"ok": True}
    # a POST that the backend refused (503) is sent again, with the same key
    keys = [r["headers"].get("idempotency-key") for r in server.requests]
    assert keys == ["run-1:step-charge", "run-1:step-charge"]
    gateway.call("remote", {"id": "b"})  # no key: no header
    assert "idempotency-key" not in server.requests[-1]["headers"]


def test_post_without_a_key_is_not_retried_on_503(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    server = http_server(lambda *a: json_response({}, 503))
    gateway.register(http_tool(server.url + "/orders", method="POST", retries=2))
    with pytest.raises(BackendError, match=r"after 1 attempt\(s\): HTTP 503"):
        gateway.call("remote", {"id": "a"})
    assert len(server.requests) == 1


def test_mcp_backend_gets_the_idempotency_key_in_meta(gateway: Gateway, asgi_server: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import mcp_backend_server
    finally:
        sys.path.remove(str(HERE))
    app = mcp_backend_server.server.streamable_http_app(json_response=True, stateless_http=True)
    server = asgi_server(app)
    gateway.register(
        {
            "name": "meta",
            "capability": "test.meta",
            "version": "1.0.0",
            "backend": {"type": "mcp", "tool": "request_meta", "url": server.url + "/mcp"},
        }
    )
    out = gateway.call("meta", {}, idempotency_key="run-7:step-3")
    assert out.output["meta"]["daytwo/idempotency_key"] == "run-7:step-3"
    plain = gateway.call("meta", {})
    assert "daytwo/idempotency_key" not in plain.output["meta"]


def test_retry_after_seconds_is_waited_out(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    stamps: list[float] = []
    answers = iter([503, 200])

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        stamps.append(time.monotonic())
        status = next(answers)
        if status == 503:
            return 503, {"retry-after": "1"}, b"{}"
        return json_response({"ok": True})

    server = http_server(handler)
    gateway.register(http_tool(server.url + "/r", retries=2))
    assert gateway.call("remote", {}).output == {"ok": True}
    assert len(stamps) == 2
    gap = stamps[1] - stamps[0]
    assert 0.95 <= gap < 2.0, gap  # the backoff alone would be 0.05 s


def test_retry_after_http_date_on_429_for_a_keyed_post(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    stamps: list[float] = []
    answers = iter([429, 200])

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        stamps.append(time.monotonic())
        if next(answers) == 429:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return 429, {"retry-after": when}, b"{}"
        return json_response({"ok": True})

    server = http_server(handler)
    gateway.register(http_tool(server.url + "/r", method="POST"))
    assert gateway.call("remote", {}, idempotency_key="k-429").output == {"ok": True}
    # an HTTP-date has 1 s resolution: 2 s ahead is at least ~1 s away
    assert stamps[1] - stamps[0] >= 0.95


def test_retry_after_beyond_the_cap_fails_at_once(
    sqlite_store: Store, http_server: Callable[..., LoopbackServer]
) -> None:
    server = http_server(lambda *a: (503, {"retry-after": "120"}, b"{}"))
    with Gateway(sqlite_store, ssrf_allow=["127.0.0.1"], retry_after_max_s=5) as gw:
        gw.register(http_tool(server.url + "/r", retries=3))
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"retried after 120 s, longer than the 5 s") as info:
            gw.call("remote", {})
        assert time.monotonic() - started < 1.0
        assert info.value.context["retry_after_s"] == 120
        assert len(server.requests) == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    later = parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert later is not None
    assert 28 <= later <= 31


def _token_server(
    issued: list[tuple[str, str]],
) -> Callable[[str, str, dict[str, str], bytes], Any]:
    """A client-credentials token endpoint: a new token per request, any known client."""
    secrets = {"client-1": {"secret-A", "secret-B"}}

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        user, _, pw = base64.b64decode(headers["authorization"].split()[1]).decode().partition(":")
        if pw not in secrets.get(user, set()):
            return json_response({"error": "invalid_client"}, 401)
        token = f"tok-{len(issued)}"
        issued.append((token, pw))
        return json_response({"access_token": token, "expires_in": 3600})

    return handler


def _oauth_gateway(store: Store, tmp_path: Path, token_url: str, backend_url: str) -> Gateway:
    gw = Gateway(store, Settings(data_dir=tmp_path / "data"), ssrf_allow=["127.0.0.1"])
    assert gw.vault is not None
    gw.vault.put("client-secret", "secret-A")
    gw.register(
        http_tool(
            backend_url,
            method="POST",
            auth={
                "type": "oauth2_client_credentials",
                "token_url": token_url,
                "client_id": "client-1",
                "client_secret": "client-secret",
                "scope": "orders",
            },
        )
    )
    return gw


def test_oauth2_token_refreshed_once_on_401(
    sqlite_store: Store, tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    issued: list[tuple[str, str]] = []
    revoked = {"tok-0"}  # the backend rejects the first token before its expires_in

    def api(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        token = headers.get("authorization", "").split(" ", 1)[-1]
        if token in revoked:
            return json_response({"error": "invalid_token"}, 401)
        return json_response({"token": token})

    tokens = http_server(_token_server(issued))
    backend = http_server(api)
    with _oauth_gateway(sqlite_store, tmp_path, tokens.url + "/token", backend.url + "/r") as gw:
        assert gw.call("remote", {}).output == {"token": "tok-1"}
        assert [t for t, _ in issued] == ["tok-0", "tok-1"]
        assert gw.call("remote", {}).output == {"token": "tok-1"}  # the new one is cached
        assert len(issued) == 2
        # a backend that rejects every token: one refresh, then a clear 401, no loop
        revoked.update({"tok-1", "tok-2", "tok-3"})
        with pytest.raises(BackendError, match="HTTP 401"):
            gw.call("remote", {})
        assert len(issued) == 3
        assert len(backend.requests) == 5  # 2 + 1 + (rejected, refreshed, rejected)


def test_oauth2_rotated_secret_gets_a_new_token(
    sqlite_store: Store, tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    issued: list[tuple[str, str]] = []
    tokens = http_server(_token_server(issued))
    backend = http_server(lambda m, p, h, b: json_response({"auth": h.get("authorization")}))
    with _oauth_gateway(sqlite_store, tmp_path, tokens.url + "/token", backend.url + "/r") as gw:
        assert gw.vault is not None
        gw.call("remote", {})
        gw.call("remote", {})
        assert issued == [("tok-0", "secret-A")]
        gw.vault.put("client-secret", "secret-B")  # rotated in the vault
        assert gw.call("remote", {}).output == {"auth": "Bearer tok-1"}
        assert issued[-1] == ("tok-1", "secret-B")
        # the cache holds no plaintext secret
        assert "secret-A" not in repr(gw.tokens._tokens)
        assert "secret-B" not in repr(gw.tokens._tokens)


def _mcp(name: str, tool: str, **backend: Any) -> dict[str, Any]:
    return {
        "name": name,
        "capability": f"test.{name}",
        "version": "1.0.0",
        "input_schema": {"type": "object"},
        "backend": {"type": "mcp", "tool": tool, **backend},
    }


def test_mcp_text_results_are_usable(gateway: Gateway, asgi_server: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import mcp_backend_server
    finally:
        sys.path.remove(str(HERE))
    app = mcp_backend_server.server.streamable_http_app(json_response=True, stateless_http=True)
    url = asgi_server(app).url + "/mcp"
    gateway.register(_mcp("summary", "summary", url=url))
    assert gateway.call("summary", {"account": "acme"}).output == {"text": "acme looks fine"}
    gateway.register(_mcp("record", "summary_json", url=url))
    record = gateway.call("record", {"account": "acme"}).output
    assert record["account"] == "acme"  # JSON object text is the object
    # an output schema with a text field: the JSON text stays text
    wants_text = _mcp("record_text", "summary_json", url=url)
    wants_text["output_schema"] = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }
    gateway.register(wants_text)
    out = gateway.call("record_text", {"account": "acme"}).output
    assert set(out) == {"text"}
    assert '"account": "acme"' in out["text"]


@pytest.mark.slow
def test_tools_of_one_stdio_server_share_one_process(gateway: Gateway) -> None:
    import os

    command = [sys.executable, str(HERE / "mcp_backend_server.py"), "stdio"]
    gateway.register(_mcp("whoami", "whoami", command=command))
    gateway.register(_mcp("record", "summary_json", command=command))
    gateway.register(_mcp("meta", "request_meta", command=command))
    pid = gateway.call("whoami", {}).output["pid"]
    assert gateway.call("record", {"account": "a"}).output["pid"] == pid
    meta = gateway.call("meta", {}, idempotency_key="run-9:step-1").output["meta"]
    assert meta["daytwo/idempotency_key"] == "run-9:step-1"  # over stdio too
    assert gateway.call("whoami", {}).output["pid"] == pid
    gateway.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the MCP server process outlived gateway.close()")


def test_deadline_caps_retry_after(
    gateway: Gateway, http_server: Callable[..., LoopbackServer]
) -> None:
    server = http_server(lambda *a: (503, {"retry-after": "3"}, b"{}"))
    gateway.register(http_tool(server.url + "/r"))
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"more than the 0\.\d s left of the step's latency"):
        gateway.call("remote", {}, deadline=time.monotonic() + 0.8)
    assert time.monotonic() - started < 0.7
    assert len(server.requests) == 1


def test_runtime_step_sends_its_key_and_its_budget_caps_retry_after(
    sqlite_store: Store, tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    from daytwo.runtime import Runtime, Services, load_spec
    from daytwo.runtime.adapters import GatewayTools
    from daytwo.runtime.steps import idempotency_key

    delay = {"value": "1"}
    seen: list[tuple[str | None, float]] = []

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        key = headers.get("idempotency-key")
        first = not any(k == key for k, _ in seen)
        seen.append((key, time.monotonic()))
        if first or delay["value"] != "1":
            return 503, {"retry-after": delay["value"]}, b"{}"
        return json_response({"ok": True})

    server = http_server(handler)
    gw = Gateway(sqlite_store, ssrf_allow=["127.0.0.1"])
    gw.register(http_tool(server.url + "/r", method="POST"))
    rt = Runtime(sqlite_store, Services(tools=GatewayTools(gw, as_agent=False)), data_dir=tmp_path)
    rt.launch()
    try:
        steps = [{"id": "call", "kind": "tool", "tool": "remote", "arguments": {}}]
        rt.registry.register(
            load_spec({"name": "caller", "slo": {"latency_ms": 2500}, "steps": steps})
        )
        run = rt.start("caller", {})
        assert run["status"] == "succeeded", run["error"]
        assert seen[0][0] == idempotency_key(run["id"], "call")  # the step's key, both times
        assert [k for k, _ in seen] == [seen[0][0]] * 2
        assert seen[1][1] - seen[0][1] >= 0.95
        delay["value"] = "20"  # within the gateway's 30 s cap, beyond the step's budget
        started = time.monotonic()
        failed = rt.start("caller", {})
        assert failed["status"] == "failed"
        assert "latency budget" in json.dumps(failed, default=str)
        assert time.monotonic() - started < 10
    finally:
        rt.shutdown()
        gw.close()
