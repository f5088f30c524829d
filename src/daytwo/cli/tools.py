"""`daytwo tools`: the tool gateway's catalog, agents, secrets, health, drift and MCP endpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

if TYPE_CHECKING:
    from daytwo.gateway import Gateway, ToolDefinition

app = typer.Typer(
    help="Tool gateway: versioned contracts, agents, credentials, health, drift, MCP.",
    no_args_is_help=True,
)

_JSON = typer.Option(False, "--json", help="Print JSON.")
_ALLOW = typer.Option(
    [], "--allow-host", help="Host or CIDR HTTP backends may reach although internal (repeatable)."
)


def _gateway(allow: list[str] | None = None, *, require_auth: bool = False) -> Gateway:
    from daytwo.gateway import Gateway
    from daytwo.server.services import tool_visibility

    store = state.store()
    # An agent key (tools call --api-key, mcp-serve) sees only its tenant's tools, as
    # on the server; the operator's own calls (no key) see the whole catalog.
    return Gateway(
        store,
        state.settings(),
        ssrf_allow=list(allow or []),
        require_auth=require_auth,
        visible_to=tool_visibility(store),
    )


def _tracing(gw: Gateway) -> Any:
    try:
        from daytwo.tracing import setup_tracing
    except ImportError:  # pragma: no cover - tracing layer absent
        return None
    return setup_tracing(gw.store, state.settings())


def _definition(ref: str, gw: Gateway | None) -> ToolDefinition:
    """A definition from a YAML file (one tool) or a registered ``name@version``."""
    from daytwo.exceptions import InputError
    from daytwo.gateway import load_definitions

    path = Path(ref)
    if path.suffix in {".yaml", ".yml", ".json"} or path.exists():
        defs = load_definitions(path)
        if len(defs) != 1:
            raise InputError(f"{ref} holds {len(defs)} tools", hint="diff files with one tool each")
        return defs[0]
    gw = gw or _gateway()
    return gw.get(ref).definition


@app.command("list")
def list_tools(
    capability: str | None = typer.Option(None, help="Only tools serving this capability."),
    major: int | None = typer.Option(None, help="Only this major version."),
    json_out: bool = _JSON,
) -> None:
    """List registered tool versions."""
    records = _gateway().tools(capability, major)
    if json_out:
        print_json([r.as_dict() for r in records])
        return
    if not records:
        console.print("no tools registered (daytwo tools register FILE.yaml)")
        return
    from rich.table import Table

    table = Table("name", "version", "capability", "backend", "drift", "hash")
    for r in records:
        d = r.as_dict()
        table.add_row(
            r.name, r.version, r.capability, d["backend"], d["drift_policy"], r.definition_hash[:12]
        )
    console.print(table)


@app.command()
def show(
    tool: str = typer.Argument(..., help="Tool name, name@MAJOR or name@VERSION."),
    json_out: bool = _JSON,
) -> None:
    """Show one tool version's full definition."""
    record = _gateway().get(tool)
    data = record.as_dict(full=True)
    if json_out:
        print_json(data)
    else:
        import yaml

        console.print(yaml.safe_dump(data, sort_keys=False), markup=False)


@app.command()
def register(
    file: Annotated[Path, typer.Argument(help="YAML file with one tool or `tools: [...]`.")],
    allow: list[str] = _ALLOW,
    json_out: bool = _JSON,
) -> None:
    """Register tool definitions (all or nothing; a changed definition needs a new version)."""
    from daytwo.gateway import load_definitions

    definitions = load_definitions(file)
    records = _gateway(allow).register_many(definitions)
    from daytwo.cli._audit import audit_operator

    for r in records:
        audit_operator("tool.register", r.name, {"version": r.version, "hash": r.definition_hash})
    if json_out:
        print_json([r.as_dict() for r in records])
    else:
        for r in records:
            console.print(f"registered {r.name} {r.version} ({r.capability})")


@app.command("register-samples")
def register_samples_cmd(json_out: bool = _JSON) -> None:
    """Register the sample orders.status tools (cached and live)."""
    from daytwo.gateway.samples import register_samples

    records = register_samples(_gateway())
    if json_out:
        print_json([r.as_dict() for r in records])
    else:
        for r in records:
            console.print(f"registered {r.name} {r.version} ({r.capability})")


@app.command("import-openapi")
def import_openapi_cmd(
    spec: Annotated[Path, typer.Argument(help="OpenAPI 3 document (YAML or JSON).")],
    base_url: str = typer.Option(..., "--base-url", help="Base URL the operations are served at."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the tools, register nothing."),
    allow: list[str] = _ALLOW,
    json_out: bool = _JSON,
) -> None:
    """Turn each operation of an OpenAPI 3 spec into a tool ($refs resolved)."""
    from daytwo.gateway.openapi import import_openapi, load_openapi

    skipped: list[dict[str, str]] = []
    definitions = import_openapi(load_openapi(spec), base_url, skipped)
    if dry_run:
        data = [d.model_dump(mode="json") for d in definitions]
    else:
        data = [r.as_dict() for r in _gateway(allow).register_many(definitions)]
    if json_out:
        print_json({"tools": data, "skipped": skipped})
    else:
        for d in definitions:
            verb = "would register" if dry_run else "registered"
            console.print(f"{verb} {d.name} {d.version} ({d.capability})")
        for s in skipped:
            console.print(f"[yellow]skipped[/yellow] {s['operation']}: {s['reason']}")


@app.command("import-mcp")
def import_mcp_cmd(
    command: str | None = typer.Option(
        None, "--command", help="The stdio MCP server's command line (shell-quoted)."
    ),
    url: str | None = typer.Option(None, "--url", help="The Streamable HTTP MCP server's URL."),
    prefix: str = typer.Option("", "--prefix", help="Put before every tool name (e.g. gh_)."),
    timeout_s: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per MCP call."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the tools, register nothing."),
    allow: list[str] = _ALLOW,
    json_out: bool = _JSON,
) -> None:
    """Register every tool of an MCP server (one versioned tool each, all or nothing)."""
    import shlex

    from daytwo.cli._audit import audit_operator
    from daytwo.gateway.mcp_import import mcp_definitions

    gateway = _gateway(allow)
    argv = shlex.split(command) if command else None
    definitions = mcp_definitions(
        gateway, command=argv, url=url, prefix=prefix, timeout_s=timeout_s
    )
    if dry_run:
        data = [d.model_dump(mode="json") for d in definitions]
    else:
        records = gateway.register_many(definitions)
        for r in records:
            audit_operator(
                "tool.register", r.name, {"version": r.version, "hash": r.definition_hash}
            )
        data = [r.as_dict() for r in records]
    if json_out:
        print_json(data)
    else:
        for d in definitions:
            verb = "would register" if dry_run else "registered"
            console.print(f"{verb} {d.name} {d.version} ({d.capability})")


@app.command()
def diff(
    a: str = typer.Argument(..., help="Old: a YAML file or name@version."),
    b: str = typer.Argument(..., help="New: a YAML file or name@version."),
    json_out: bool = _JSON,
) -> None:
    """Classify the change from A to B as breaking or compatible (exit 1 when breaking)."""
    from daytwo.gateway import diff_definitions

    result = diff_definitions(_definition(a, None), _definition(b, None))
    if json_out:
        print_json(result.as_dict())
    else:
        style = {"breaking": "red", "compatible": "green", "identical": "dim"}[result.kind]
        console.print(f"[{style}]{result.kind}[/]")
        for r in result.breaking:
            console.print(f"  breaking: {r}", markup=False)
        for r in result.compatible:
            console.print(f"  compatible: {r}", markup=False)
        if result.version_note:
            console.print(f"[yellow]{result.version_note}[/]")
    if result.kind == "breaking":
        raise typer.Exit(1)


@app.command()
def health(
    window: float = typer.Option(300.0, min=1.0, help="Sliding window in seconds."),
    json_out: bool = _JSON,
) -> None:
    """Latency p50/p95/p99, error rate and cost per tool over the window (all processes)."""
    from daytwo.gateway.telemetry import stats_from_db

    stats = stats_from_db(state.store(), window_s=window)
    if json_out:
        print_json({"window_s": window, "tools": {t: s.as_dict() for t, s in stats.items()}})
        return
    if not stats:
        console.print(f"no tool calls in the last {window:.0f} s")
        return
    from rich.table import Table

    table = Table("tool", "calls", "p50 ms", "p95 ms", "p99 ms", "errors", "cost $")
    for tool, s in stats.items():
        table.add_row(
            tool,
            str(s.calls),
            f"{s.p50_ms:.1f}",
            f"{s.p95_ms:.1f}",
            f"{s.p99_ms:.1f}",
            f"{s.error_rate:.1%}",
            f"{s.cost_usd:.4f}",
        )
    console.print(table)


@app.command()
def drift(
    tool: str | None = typer.Option(None, help="Only this tool."),
    limit: int = typer.Option(200, min=1, help="Most alerts to show."),
    json_out: bool = _JSON,
) -> None:
    """Semantic-drift alerts, newest first."""
    alerts = _gateway().drift_alerts(tool, limit)
    if json_out:
        print_json({"alerts": alerts})
        return
    if not alerts:
        console.print("no drift alerts")
        return
    for a in alerts:
        console.print(
            f"{a['created_at'][:19]} {a['tool']} {a['version']} {a['field']}: {a['kind']} "
            f"({a['source']}, {a['action']}) {a['detail']}",
            markup=False,
        )


@app.command()
def call(
    tool: str = typer.Argument(..., help="Tool name, name@MAJOR or name@VERSION."),
    args: str = typer.Option("{}", "--args", help="Arguments as a JSON object."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="MCP_GATEWAY_API_KEY", help="Agent API key."
    ),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    allow: list[str] = _ALLOW,
    json_out: bool = _JSON,
) -> None:
    """Call a tool through the gateway."""
    from daytwo.exceptions import InputError

    try:
        arguments = json.loads(args)
    except ValueError as exc:
        raise InputError(
            f"--args is not JSON: {exc}", hint="pass e.g. --args '{\"id\": 1}'"
        ) from exc
    if not isinstance(arguments, dict):
        raise InputError("--args must be a JSON object", hint="pass e.g. --args '{\"id\": 1}'")
    gw = _gateway(allow)
    handle = _tracing(gw)
    try:
        result = gw.call(tool, arguments, api_key=api_key, idempotency_key=idempotency_key)
    finally:
        gw.close()
        if handle is not None:
            handle.flush()
    if json_out:
        print_json(result.as_dict())
    else:
        console.print_json(json.dumps(result.output, default=str))
        for a in result.alerts:
            console.print(f"[yellow]drift: {a.field} {a.kind}: {a.detail}[/]", markup=True)


@app.command("agent-create")
def agent_create(
    name: Annotated[str, typer.Argument()],
    tool: Annotated[
        list[str], typer.Option("--tool", help="Tool name pattern or cap:<capability>.")
    ],
    rate_limit: str | None = typer.Option(None, help="e.g. 60/minute"),
    tenant: str = typer.Option(
        "default", "--tenant", help="Tenant the agent acts for: it sees only that tenant's tools."
    ),
    json_out: bool = _JSON,
) -> None:
    """Create an agent of a tenant; prints its API key once (it is stored hashed).

    Agent names are unique across tenants.
    """
    from daytwo.server.auth import check_tenant

    check_tenant(tenant)
    key = _gateway().create_agent(name, list(tool), rate_limit, tenant=tenant)
    if json_out:
        print_json({"name": name, "tenant": tenant, "api_key": key, "tools": list(tool)})
    else:
        console.print(f"agent {name} of tenant {tenant} created; its API key (shown once):")
        console.print(key, markup=False)


@app.command("agent-list")
def agent_list(
    tenant: str | None = typer.Option(None, "--tenant", help="Only the agents of this tenant."),
    json_out: bool = _JSON,
) -> None:
    """List agents, their tenant and what they may call."""
    agents = _gateway().agents.list_agents(tenant)
    data = [
        {"name": a.name, "tenant": a.tenant, "tools": list(a.tools), "rate_limit": a.rate_limit}
        for a in agents
    ]
    if json_out:
        print_json(data)
    else:
        for a in agents:
            console.print(
                f"{a.name} [{a.tenant}]: {', '.join(a.tools)} ({a.rate_limit or 'no limit'})",
                markup=False,
            )


@app.command("agent-delete")
def agent_delete(name: str = typer.Argument(...)) -> None:
    """Revoke an agent and its key."""
    _gateway().agents.delete(name)
    console.print(f"agent {name} deleted")


@app.command("secret-set")
def secret_set(
    name: Annotated[str, typer.Argument()],
    stdin: bool = typer.Option(False, "--stdin", help="Read the value from stdin."),
) -> None:
    """Store a credential in the vault (encrypted with AES-GCM); prompts unless --stdin."""
    from daytwo.exceptions import InputError

    value = sys.stdin.read().rstrip("\n") if stdin else typer.prompt("value", hide_input=True)
    if not value:
        raise InputError("the secret is empty", hint="pass a value")
    vault = _gateway().vault
    assert vault is not None
    vault.put(name, value)
    from daytwo.cli._audit import audit_operator

    audit_operator("credential.set", name)  # the name only, never the value
    console.print(f"secret {name} stored")


@app.command("secret-list")
def secret_list(json_out: bool = _JSON) -> None:
    """Names of the stored secrets (never their values)."""
    vault = _gateway().vault
    assert vault is not None
    names = vault.names()
    if json_out:
        print_json(names)
    else:
        for n in names:
            console.print(n)


@app.command("mcp-serve")
def mcp_serve(
    transport: str = typer.Option("stdio", help="stdio or http"),
    host: str = typer.Option("127.0.0.1", help="HTTP bind address."),
    port: int = typer.Option(8765, help="HTTP port."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="MCP_GATEWAY_API_KEY", help="Agent key of a stdio session."
    ),
    allow: list[str] = _ALLOW,
) -> None:
    """Serve the catalog over MCP (stdio, or Streamable HTTP at /mcp with Bearer agent keys)."""
    from daytwo.exceptions import InputError
    from daytwo.gateway.mcp_server import mcp_asgi_app, serve_stdio

    if transport not in {"stdio", "http"}:
        raise InputError(f"unknown transport {transport!r}", hint="use stdio or http")
    gw = _gateway(allow, require_auth=True)
    handle = _tracing(gw)
    try:
        if transport == "stdio":
            if api_key is None:
                raise InputError(
                    "an MCP stdio session needs an agent key",
                    hint="pass --api-key or set MCP_GATEWAY_API_KEY",
                )
            gw.authenticate(api_key)
            serve_stdio(gw, api_key=api_key)
        else:
            import uvicorn

            uvicorn.run(mcp_asgi_app(gw, host=host), host=host, port=port, log_level="warning")
    finally:
        gw.close()
        if handle is not None:
            handle.flush()
