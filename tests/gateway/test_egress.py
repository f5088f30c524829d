"""Egress policy (SSRF): every non-global form refused at registration and at connect time,
the allow-list, and one pinned resolution per connection (no DNS rebinding)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daytwo.exceptions import BackendError, InputError, SsrfBlocked
from daytwo.gateway import Gateway
from daytwo.gateway.egress import EgressPolicy, pinned_client
from daytwo.settings import Settings
from daytwo.store import Store

from .conftest import LoopbackServer, json_response

INTERNAL = [
    "http://127.0.0.1:5432/",  # PostgreSQL on the host
    "http://127.1/",
    "http://0.0.0.0/",
    "http://10.1.2.3/x",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",  # shared address space (cloud metadata lives here too)
    "http://100.100.100.200/latest/meta-data",  # Alibaba Cloud's metadata address
    "http://169.254.169.254/latest/meta-data",  # AWS/GCP/Azure metadata
    "http://198.18.0.1/",
    "http://192.0.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/x",
    "http://[::]/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://localhost:8080/",
    "http://LOCALHOST./",
    "http://api.localhost/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_every_non_global_form_is_refused(url: str) -> None:
    with pytest.raises(SsrfBlocked, match="internal address"):
        EgressPolicy().check_static(url)
    with pytest.raises(SsrfBlocked, match="internal address"):
        EgressPolicy().check(url)


@pytest.mark.parametrize(
    "url", ["https://8.8.8.8/x", "http://[2606:4700:4700::1111]/", "http://[::ffff:8.8.8.8]/"]
)
def test_global_addresses_pass(url: str) -> None:
    EgressPolicy().check(url)


def http_tool(url: str, name: str = "remote", **auth: Any) -> dict[str, Any]:
    backend: dict[str, Any] = {"type": "http", "method": "GET", "url": url, "retries": 0}
    if auth:
        backend["auth"] = auth
    return {
        "name": name,
        "capability": "test.remote",
        "version": "1.0.0",
        "input_schema": {"type": "object"},
        "backend": backend,
    }


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_targets_refused_at_registration(sqlite_store: Store, url: str) -> None:
    with Gateway(sqlite_store) as gw:
        with pytest.raises(SsrfBlocked, match="internal address"):
            gw.register(http_tool(url))
        assert gw.tools() == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://ftp.example.com/x",
        "dict://127.0.0.1:11211/",
        "http:///no-host",
        "http://[::1/broken",
    ],
)
def test_non_http_urls_refused_at_registration(sqlite_store: Store, url: str) -> None:
    with Gateway(sqlite_store) as gw:
        with pytest.raises(InputError, match="URL"):
            gw.register(http_tool(url))
        assert gw.tools() == []


def test_oauth_token_url_and_mcp_url_checked_at_registration(sqlite_store: Store) -> None:
    with Gateway(sqlite_store) as gw:
        with pytest.raises(SsrfBlocked, match=r"169\.254\.169\.254"):
            gw.register(
                http_tool(
                    "https://api.example.com/x",
                    type="oauth2_client_credentials",
                    token_url="http://169.254.169.254/token",
                    client_id="c",
                    client_secret="s",
                )
            )
        mcp = {
            "name": "m",
            "capability": "test.m",
            "version": "1.0.0",
            "backend": {"type": "mcp", "url": "http://[::ffff:7f00:1]:8000/mcp", "tool": "t"},
        }
        with pytest.raises(SsrfBlocked, match="internal address"):
            gw.register(mcp)
        assert gw.tools() == []


def test_allow_list_by_name_suffix_and_cidr() -> None:
    policy = EgressPolicy(["inventory.internal", ".corp.example", "10.20.0.0/16", "::1"])
    policy.check_static("https://inventory.internal/items")
    policy.check_static("https://a.b.corp.example/")
    policy.check("http://10.20.3.4/")
    policy.check("http://[::1]:8080/")
    with pytest.raises(SsrfBlocked):
        policy.check("http://10.21.0.1/")
    assert not policy.host_allowed("corp.example.evil")
    assert not policy.host_allowed("xcorp.example")
    assert policy.allow == ["inventory.internal", "*.corp.example", "10.20.0.0/16", "::1/128"]


def test_allow_setting_reaches_the_gateway_and_calls_go_through(
    sqlite_store: Store, tmp_path: Path, http_server: Callable[..., LoopbackServer]
) -> None:
    server = http_server(lambda *a: json_response({"ok": True}))
    url = server.url.replace("127.0.0.1", "localhost") + "/x"
    strict = Gateway(sqlite_store)
    with pytest.raises(SsrfBlocked):
        strict.register(http_tool(url))
    settings = Settings(data_dir=tmp_path / "d", egress_allow="localhost, 127.0.0.0/8")  # type: ignore[arg-type]
    with Gateway(sqlite_store, settings) as gw:
        gw.register(http_tool(url))
        assert gw.call("remote", {}).output == {"ok": True}
    # The Host header still names the host (the connection went to the checked address).
    assert server.requests[0]["headers"]["host"] == url.split("/")[2]
    # A gateway without the allow-list refuses the registered tool at call time,
    # and nothing reaches the server.
    with pytest.raises(SsrfBlocked, match="internal address"):
        strict.call("remote", {})
    assert len(server.requests) == 1
    strict.close()


class ScriptedDns(EgressPolicy):
    """A policy whose DNS answers come from a script (the network here is loopback only)."""

    def __init__(self, answers: list[list[str]], allow: list[str] | None = None) -> None:
        super().__init__(allow or [])
        self.answers = answers
        self.lookups: list[str] = []

    def lookup(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def test_one_resolution_per_connection_so_rebinding_cannot_reach_loopback(
    http_server: Callable[..., LoopbackServer],
) -> None:
    server = http_server(lambda *a: json_response({"ok": True}))
    port = server.url.rsplit(":", 1)[1]
    # First answer global, every later answer loopback: a guard that resolves to check
    # and lets the client resolve again would connect to the loopback server.
    dns = ScriptedDns([["8.8.8.8"], ["127.0.0.1"]])
    with pinned_client(dns) as client, pytest.raises(Exception) as info:
        client.get(f"http://rebind.example:{port}/x", timeout=2)
    assert "non-loopback" in str(info.value) or "8.8.8.8" in str(info.value.__cause__)
    assert dns.lookups == ["rebind.example"]
    assert server.requests == []
    # A mixed answer (one global, one internal address) is refused as a whole.
    mixed = ScriptedDns([["8.8.8.8", "127.0.0.1"]])
    with pinned_client(mixed) as client, pytest.raises(SsrfBlocked, match=r"127\.0\.0\.1"):
        client.get(f"http://mixed.example:{port}/x")
    assert server.requests == []


def test_pinned_connection_to_an_allowed_address_keeps_the_host_header(
    http_server: Callable[..., LoopbackServer],
) -> None:
    server = http_server(lambda *a: json_response({"ok": True}))
    port = server.url.rsplit(":", 1)[1]
    dns = ScriptedDns([["127.0.0.1"]], allow=["127.0.0.0/8"])
    with pinned_client(dns) as client:
        assert client.get(f"http://svc.internal:{port}/x").json() == {"ok": True}
    assert dns.lookups == ["svc.internal"]
    assert server.requests[0]["headers"]["host"] == f"svc.internal:{port}"


def test_call_time_refusal_is_a_typed_error_not_a_backend_failure(
    sqlite_store: Store, http_server: Callable[..., LoopbackServer]
) -> None:
    server = http_server(lambda *a: json_response({"ok": True}))
    with Gateway(sqlite_store, ssrf_allow=["127.0.0.1"]) as gw:
        gw.register(http_tool(server.url + "/x"))
    with Gateway(sqlite_store) as strict:
        with pytest.raises(SsrfBlocked) as info:
            strict.call("remote", {})
        assert not isinstance(info.value, BackendError)
    assert server.requests == []


def test_cli_registration_refuses_internal_base_urls_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daytwo.cli.main import run

    from .test_catalog import SPEC

    monkeypatch.setenv("DAYTWO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    assert run(["db", "upgrade"]) == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    capsys.readouterr()
    args = ["tools", "import-openapi", str(spec), "--json", "--base-url"]
    assert run([*args, "http://10.0.0.5"]) == 2
    assert "internal address 10.0.0.5" in capsys.readouterr().err
    assert run([*args, "file:///etc"]) == 2
    assert "not http(s)" in capsys.readouterr().err
    # The README's example: an internal base URL, allow-listed by the setting.
    monkeypatch.setenv("DAYTWO_EGRESS_ALLOW", "inventory.internal,10.0.0.0/8")
    assert run([*args, "https://inventory.internal"]) == 0, capsys.readouterr().err
