"""Agent principals act for a tenant: the migration, and what a tenant's key sees and calls."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import daytwo.store.migrate
from daytwo.exceptions import InputError, NotFoundError, PermissionDenied
from daytwo.gateway import Agent, Gateway
from daytwo.gateway.agents import AgentRegistry, hash_key
from daytwo.store import Store
from daytwo.tracing.audit import AuditLog

from .conftest import py_tool


def test_existing_agents_act_for_tenant_default_after_the_migration(db_url: str) -> None:
    store = Store(db_url)
    try:
        cfg = Config()
        cfg.set_main_option(
            "script_location", str(Path(daytwo.store.migrate.__file__).with_name("migrations"))
        )
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0200_gateway")  # the schema before agents had a tenant
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO gateway_agents (name, key_hash, tools, rate_limit, created_at) "
                    "VALUES ('old-bot', :h, '[\"*\"]', NULL, CURRENT_TIMESTAMP)"
                ),
                {"h": hash_key("dt_old-key")},
            )
        assert "0201_gateway_agent_tenants" in store.upgrade()
        registry = AgentRegistry(store)
        assert registry.list_agents() == [Agent("old-bot", ("*",), None, tenant="default")]
        assert registry.authenticate("dt_old-key").tenant == "default"
        assert registry.authenticate("dt_old-key").actor == "old-bot"
        registry.create("new-bot", ["*"], tenant="acme")
        assert [a.name for a in registry.list_agents("acme")] == ["new-bot"]
        with pytest.raises(InputError, match="not a valid tenant name"):
            registry.create("bad", ["*"], tenant="a/b")
        assert [a.name for a in registry.list_agents()] == ["new-bot", "old-bot"]
    finally:
        store.dispose()


OWNER = {"acme_tool": "acme", "globex_tool": "globex", "host_tool": "default"}


def _visible(tenant: str, names: list[str]) -> list[str]:
    """A visibility rule of the gateway's interface (the server gives ownership + grants)."""
    return [n for n in names if OWNER.get(n, "default") == tenant]


def test_a_key_sees_and_calls_only_its_tenants_tools(sqlite_store: Store) -> None:
    gw = Gateway(sqlite_store, visible_to=_visible)
    try:
        gw.register_python("echo", lambda: {"ok": True})
        for name in OWNER:
            gw.register(py_tool(name, "echo"))
        acme = gw.create_agent("acme-bot", ["*"], tenant="acme")
        globex = gw.create_agent("globex-bot", ["*"], tenant="globex")
        host = gw.create_agent("host-bot", ["*"])
        names = {
            key: [r.name for r in gw.catalog_for(gw.authenticate(key))]
            for key in (acme, globex, host)
        }
        assert names == {acme: ["acme_tool"], globex: ["globex_tool"], host: ["host_tool"]}
        assert gw.call("acme_tool", {}, api_key=acme).output == {"ok": True}
        # Another tenant's tool answers exactly as a tool that exists nowhere, even
        # with a version selector (which for a visible tool names its versions).
        for ref in ("acme_tool", "acme_tool@99", "acme_tool@1.0.0"):
            with pytest.raises(NotFoundError) as hidden:
                gw.call(ref, {}, api_key=globex)
            with pytest.raises(NotFoundError) as missing:
                gw.call(ref.replace("acme_tool", "no_tool"), {}, api_key=globex)
            assert type(hidden.value) is type(missing.value)
            assert str(hidden.value).replace("acme_tool", "no_tool") == str(missing.value)
            assert hidden.value.hint == missing.value.hint
        with pytest.raises(NotFoundError, match="has no version '99'"):
            gw.call("acme_tool@99", {}, api_key=acme)  # its own tool: the versions help
        # Patterns choose among the tenant's tools only.
        narrow = gw.create_agent("globex-narrow", ["acme_*", "globex_*"], tenant="globex")
        assert [r.name for r in gw.catalog_for(gw.authenticate(narrow))] == ["globex_tool"]
        # Neither hidden call left an audit record that would tell globex the name exists.
        denied = [r for r in AuditLog(sqlite_store).records() if r.kind == "gateway.denied"]
        assert denied == []
        # A denial of a tenant's agent is audited under its tenant.
        gw.create_agent("globex-none", ["cap:nothing"], tenant="globex")
        with pytest.raises(PermissionDenied):
            gw.call("globex_tool", {}, agent="globex-none")
        denied = [r for r in AuditLog(sqlite_store).records() if r.kind == "gateway.denied"]
        assert [(r.actor, r.subject) for r in denied] == [
            ("globex/agent:globex-none", "globex_tool")
        ]
    finally:
        gw.close()


def test_without_a_visibility_rule_an_agent_sees_the_catalog(sqlite_store: Store) -> None:
    gw = Gateway(sqlite_store)
    try:
        gw.register_python("echo", lambda: {"ok": True})
        for name in OWNER:
            gw.register(py_tool(name, "echo"))
        key = gw.create_agent("globex-bot", ["*"], tenant="globex")
        assert len(gw.catalog_for(gw.authenticate(key))) == 3
        assert gw.call("acme_tool", {}, api_key=key).output == {"ok": True}
    finally:
        gw.close()
