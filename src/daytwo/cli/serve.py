"""`daytwo serve` (the REST API, dashboard and MCP endpoint) and `daytwo keys` (API keys)."""

from __future__ import annotations

import typer

from daytwo.cli._audit import audit_operator
from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

__all__ = ["grants_app", "keys_app", "serve"]

keys_app = typer.Typer(help="Create, list and revoke API keys of the server.", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="TCP port to listen on."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes. The default is one because SQLite (the embedded default) "
        "has one writer at a time: a single process serialises its writes and runs never "
        "fail on lock contention. For more, use PostgreSQL (DAYTWO_DATABASE_URL). Each "
        "worker holds an executor slot <host>-<n> and a lease: a crashed worker's runs "
        "resume in its replacement, or in another worker once the lease "
        "(DAYTWO_EXECUTOR_LEASE_S) lapsed.",
    ),
) -> None:
    """Serve the REST API, the dashboard and the MCP endpoint until Ctrl-C."""
    from daytwo.server.launch import check_enqueue_backend
    from daytwo.server.launch import serve as run_server

    settings = state.settings()
    store = state.store()  # refuses an outdated schema with one clear line
    check_enqueue_backend(settings, store.is_sqlite)
    if workers > 1 and store.is_sqlite:
        console.print(
            "[yellow]note:[/yellow] several workers over SQLite share one file lock and "
            "wait for each other under load; use PostgreSQL (DAYTWO_DATABASE_URL) to "
            "scale out"
        )
    mode = "queues runs for `daytwo runs worker`" if settings.serve_runs == "enqueue" else "runs"
    console.print(
        f"daytwo serving on http://{host}:{port}/ ({workers} worker(s), {mode}) — Ctrl-C stops"
    )
    run_server(settings, host=host, port=port, workers=workers, log_level="warning")


@keys_app.command("create")
def create(
    role: str = typer.Option(..., "--role", help="admin, operator or viewer."),
    tenant: str = typer.Option("default", "--tenant", help="Tenant the key belongs to."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a key and print it once (only its digest is stored)."""
    from daytwo.server.auth import KeyStore

    info, key = KeyStore(state.store()).create(role=role, tenant=tenant, name=name)
    audit_operator("key.create", info.id, {"tenant": info.tenant, "new_role": info.role})
    if json_out:
        print_json({"id": info.id, "tenant": info.tenant, "role": info.role, "key": key})
        return
    console.print(f"created {info.role} key {info.id} for tenant {info.tenant}")
    console.print("key (shown only now; store it safely):")
    typer.echo(key)


@keys_app.command("list")
def list_keys(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's keys."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List keys (never their secrets)."""
    from rich.table import Table

    from daytwo.server.auth import KeyStore

    infos = KeyStore(state.store()).list(tenant=tenant)
    if json_out:
        print_json([info.__dict__ for info in infos])
        return
    table = Table("id", "tenant", "role", "name", "created", "revoked")
    for k in infos:
        table.add_row(
            k.id,
            k.tenant,
            k.role,
            k.name,
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (see `daytwo keys list`)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Revoke a key; its dashboard sessions end at once."""
    from daytwo.server.auth import KeyStore

    info = KeyStore(state.store()).revoke(key_id)
    audit_operator("key.revoke", info.id, {"tenant": info.tenant, "revoked_role": info.role})
    if json_out:
        print_json(info.__dict__)
        return
    console.print(f"revoked key {info.id} ({info.role}, tenant {info.tenant})")


grants_app = typer.Typer(
    help="Share host-made objects (sample tools, public collections) with tenants.",
    no_args_is_help=True,
)

_KIND = typer.Argument(..., help="agent, tool, collection or eval_set.")


@grants_app.command("add")
def grant_add(
    kind: str = _KIND,
    name: str = typer.Argument(..., help="The object's name."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant to share it with."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Let a tenant see NAME and reference it from its agents (it cannot change it)."""
    from daytwo.server.ownership import grant

    info = grant(state.store(), kind, name, tenant)
    audit_operator("grant.add", f"{kind}:{name}", {"tenant": tenant})
    if json_out:
        print_json({**info.__dict__, "created_at": info.created_at.isoformat()})
        return
    console.print(f"granted {kind} {name!r} to tenant {tenant}")


@grants_app.command("remove")
def grant_remove(
    kind: str = _KIND,
    name: str = typer.Argument(..., help="The object's name."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant to stop sharing it with."),
) -> None:
    """Stop sharing NAME with a tenant."""
    from daytwo.server.ownership import revoke_grant

    revoke_grant(state.store(), kind, name, tenant)
    audit_operator("grant.remove", f"{kind}:{name}", {"tenant": tenant})
    console.print(f"{kind} {name!r} is no longer shared with tenant {tenant}")


@grants_app.command("list")
def grant_list(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's grants."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the grants."""
    from rich.table import Table

    from daytwo.server.ownership import list_grants

    infos = list_grants(state.store(), tenant)
    if json_out:
        print_json([{**i.__dict__, "created_at": i.created_at.isoformat()} for i in infos])
        return
    table = Table("tenant", "kind", "name", "granted")
    for i in infos:
        table.add_row(i.tenant, i.kind, i.name, i.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
