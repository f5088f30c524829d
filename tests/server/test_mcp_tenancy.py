"""The server's MCP endpoint (/mcp) resolves every tool inside the key's tenant.

A real MCP client (the SDK's Streamable HTTP client) against a live server: tenant
acme registers a tool over the API; globex's agent key with pattern ``*`` and
globex's API keys neither list nor call it (a call answers exactly as for a tool
that exists nowhere); acme's agent key and API keys do. Viewers list only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from daytwo.server import KeyStore, create_app
from daytwo.server.ownership import grant
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys, make_keys
from .live import live_server

MARK = "ACME-MCP-ONLY"


@pytest.fixture
def backend() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP tool backend on loopback that records the calls it gets."""
    calls: list[dict[str, Any]] = []

    class _H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            calls.append({"path": self.path, "body": json.loads(self.rfile.read(size) or b"{}")})
            body = json.dumps({"owner": self.path.strip("/")}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", calls
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tool(name: str, url: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "capability": "lookup.owner",
        "version": "1.0.0",
        "description": description,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "backend": {"type": "http", "url": url, "retries": 0},
    }


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def _session(url: str, key: str, calls: list[str]) -> dict[str, Any]:
    """List the tools, then call each of ``calls`` (``name`` or ``name@version``)."""
    transport = streamable_http_client(
        url, http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"})
    )
    out: dict[str, Any] = {}
    async with Client(transport, mode="legacy") as client:
        listed = (await client.list_tools()).tools
        out["tools"] = sorted(t.name for t in listed)
        out["listing"] = json.dumps([t.model_dump(mode="json") for t in listed])
        for name in calls:
            r = await client.call_tool(name, {"q": "x"})
            out[name] = (r.is_error, _text(r), r.structured_content)
    return out


def test_mcp_sees_only_the_keys_tenant(
    store: Store, tmp_path: Path, backend: tuple[str, list[dict[str, Any]]]
) -> None:
    url, hits = backend
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=store.url,
        embedder="hashing-384",
        egress_allow=["127.0.0.1"],  # type: ignore[arg-type]
    )
    keys = make_keys(store)
    globex_operator = KeyStore(store).create(role="operator", tenant="globex", name="g op")[1]
    app = create_app(settings, store, with_runtime=False)
    with live_server(app) as base:
        r = httpx.post(
            base + "/api/v1/tools",
            json={"definition": _tool("acme_tool", url + "/acme", MARK)},
            headers=Keys.header(keys.admin),
        )
        assert r.status_code == 201, r.text
        gateway = app.state.gateway
        # A tool made on the host (tenant default), shared with globex by the operator.
        gateway.register(_tool("shared_tool", url + "/shared"))
        grant(store, "tool", "shared_tool", "globex")
        agents = {
            "acme agent": gateway.create_agent("acme-bot", ["*"], tenant="acme"),
            "globex agent": gateway.create_agent("globex-bot", ["*"], tenant="globex"),
            "default agent": gateway.create_agent("host-bot", ["*"]),
        }
        mcp = base + "/mcp/"
        probes = ["acme_tool", "acme_tool@99", "nothing_here", "nothing_here@99"]

        def session(key: str) -> dict[str, Any]:
            return anyio.run(_session, mcp, key, probes)

        # -- acme: its agent key and its operator/admin API keys list and call its tool.
        for who, key in (
            ("acme agent", agents["acme agent"]),
            ("acme admin", keys.admin),
            ("acme operator", keys.operator),
        ):
            out = session(key)
            assert out["tools"] == ["acme_tool"], who
            assert MARK in out["listing"]
            assert out["acme_tool"] == (False, '{"owner": "acme"}', {"owner": "acme"}), who
            assert "has no version '99'" in out["acme_tool@99"][1]  # its own: versions help
        assert len(hits) == 3
        # acme's viewer lists, but may not call (refused, audited with the key).
        out = session(keys.viewer)
        assert out["tools"] == ["acme_tool"]
        assert out["acme_tool"][0]
        assert "may list tools but not call them" in out["acme_tool"][1]
        assert len(hits) == 3

        # -- globex (agent key with pattern *, and every role's API key): acme's tool
        # does not exist, neither in the list nor when called, in any form.
        for who, key in (
            ("globex agent", agents["globex agent"]),
            ("globex admin", keys.other_admin),
            ("globex operator", globex_operator),
            ("globex viewer", keys.other_viewer),
        ):
            out = session(key)
            assert out["tools"] == ["shared_tool"], who
            assert "acme" not in out["listing"], who
            assert MARK not in out["listing"], who
            for ref in ("acme_tool", "acme_tool@99"):
                missing = out[ref.replace("acme_tool", "nothing_here")]
                assert missing[0]
                assert "unknown tool 'nothing_here'" in missing[1]
                hidden = out[ref]
                assert hidden[0], who
                assert hidden[1] == missing[1].replace("nothing_here", "acme_tool"), who
                assert hidden[2] == missing[2]
        assert len(hits) == 3  # no globex call reached acme's backend

        # The host's own agent (tenant default) sees host tools, not acme's.
        out = session(agents["default agent"])
        assert out["tools"] == ["shared_tool"]
        assert out["acme_tool"][1] == out["nothing_here"][1].replace("nothing_here", "acme_tool")

        # Keys that are not valid get 401 before any MCP processing.
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        revoked, revoked_key = KeyStore(store).create(role="admin", tenant="globex")
        KeyStore(store).revoke(revoked.id)
        for key, problem in (
            (revoked_key, "revoked"),
            (keys.admin[:-4] + "AAAA", "not valid"),
            ("dt_forged", "not valid"),
        ):
            r = httpx.post(mcp, json=rpc, headers={**accept, "Authorization": f"Bearer {key}"})
            assert r.status_code == 401, r.text
            assert problem in r.json()["detail"]

        # Audit: the viewer's refusal names the key; globex's probes left nothing that
        # tells it acme_tool exists; globex's export holds only its own records.
        records = list(app.state.audit.records())
        denied = [r for r in records if r.kind == "gateway.denied"]
        assert [(r.actor.split("/")[0], r.subject) for r in denied] == [("acme", "acme_tool")]
        assert denied[0].actor.startswith("acme/key:")
        uses = {r.actor.split("/")[0] for r in records if r.kind == "key.use"}
        assert uses == {"acme", "globex"}
        export = httpx.get(base + "/api/v1/audit/export", headers=Keys.header(keys.other_admin))
        assert export.status_code == 200
        assert "acme" not in export.text
        assert {r["kind"] for r in export.json()} == {"key.use"}
