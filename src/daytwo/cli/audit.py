"""`daytwo audit`: verify the hash-chained audit log, list, checkpoint, export evidence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, err_console, print_json

if TYPE_CHECKING:
    from daytwo.tracing.audit import AuditLog
    from daytwo.tracing.chain import VerifyReport

app = typer.Typer(
    help="Tamper-evident audit log: verify, list, checkpoint, export evidence bundles.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _log(*, create_key: bool, pin: bool = True) -> AuditLog:
    """The store's audit log with the data directory's key, the settings' cadence and anchor.

    ``pin`` False loads the key file even when it is not the pinned one (verification
    then reports the checkpoints it signed instead of refusing to start).
    """
    from daytwo.tracing.audit import AuditLog, check_pinned
    from daytwo.tracing.signing import KEY_FILE, AuditSigner

    settings = state.settings()
    store = state.store(audit=False)
    key = settings.data_dir / KEY_FILE
    signer = AuditSigner.load_or_create(key) if create_key or key.exists() else None
    if signer is not None and pin:
        check_pinned(signer, settings.audit_key_fingerprint)
    return AuditLog(
        store,
        signer=signer,
        checkpoint_every=settings.audit_checkpoint_every,
        anchor_file=settings.audit_anchor_file,
        key_fingerprint=settings.audit_key_fingerprint,
    )


def _report(report: VerifyReport, json_out: bool, what: str) -> None:
    if json_out:
        print_json(report.to_dict())
    elif report.ok:
        unsealed = max(report.last_seq - report.sealed_seq, 0)
        tail = f"; {unsealed} newest not yet checkpointed" if unsealed else ""
        console.print(
            f"[green]OK[/green] {what}: {report.records} records, "
            f"{report.checkpoints} signed checkpoints{tail}"
        )
    else:
        assert report.problem is not None
        if report.problem.seq == 0:
            err_console.print(
                f"TAMPERED {what}: {report.problem.reason}", style="bold red", markup=False
            )
            raise typer.Exit(1)
        rid = f" (id {report.problem.record_id})" if report.problem.record_id else ""
        err_console.print(
            f"TAMPERED {what}: first bad record {report.problem.seq}{rid}: {report.problem.reason}",
            style="bold red",
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def verify(
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Trusted Ed25519 PEM public key (from `daytwo audit key --out`); default: the "
            "pinned audit_key_fingerprint, else the key file in the data directory.",
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            help="Anchor file to check against (default: the audit_anchor_file setting).",
        ),
    ] = None,
    sealed: bool = typer.Option(
        False, "--sealed", help="Also fail when the newest records are not yet checkpointed."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Check every hash link, the chain head, the signed checkpoints and their cadence.

    Exit 1 when the log was tampered with; the first bad record is named.
    """
    from daytwo.tracing.chain import Problem
    from daytwo.tracing.signing import load_public_key

    trusted = load_public_key(public_key) if public_key is not None else None
    log = _log(create_key=False, pin=False)
    if trusted is None and log.key_fingerprint is None and log.signer is not None and not json_out:
        err_console.print(
            "note: trusting the key file in the data directory; pass --public-key or pin "
            "audit_key_fingerprint so that a replaced key file is caught",
            style="yellow",
            markup=False,
        )
    report = log.verify(trusted_key=trusted, anchor_file=anchor)
    if report.ok and sealed and report.sealed_seq != report.last_seq:
        report.ok = False
        report.problem = Problem(
            report.sealed_seq + 1,
            f"records {report.sealed_seq + 1}..{report.last_seq} are not yet sealed by a "
            "checkpoint (run `daytwo audit checkpoint`)",
        )
    _report(report, json_out, "audit log")


@app.command()
def key(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the public key (PEM) to this file.")
    ] = None,
    json_out: bool = JSON_OPT,
) -> None:
    """Show the audit signing key's id (pin it as audit_key_fingerprint) and public key."""
    log = _log(create_key=True)
    assert log.signer is not None
    pem = log.signer.public_key_pem()
    if out is not None:
        out.write_text(pem, encoding="utf-8")
    if json_out:
        print_json({"key_id": log.signer.key_id, "public_key_pem": pem})
    else:
        console.print(
            f"key id {log.signer.key_id}  (DAYTWO_AUDIT_KEY_FINGERPRINT={log.signer.key_id})"
        )
        console.print(pem if out is None else f"public key written to {out}", markup=False)


@app.command()
def anchor(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Anchor file (default: the audit_anchor_file setting)."),
    ] = None,
    json_out: bool = JSON_OPT,
) -> None:
    """Sign the current head and append the newest checkpoint to the anchor file."""
    from daytwo.exceptions import InputError
    from daytwo.tracing.anchor import append_anchor

    log = _log(create_key=True)
    target = file or log.anchor_file
    if target is None:
        raise InputError(
            "no anchor file is configured", hint="pass --file or set DAYTWO_AUDIT_ANCHOR_FILE"
        )
    log.anchor_file = None  # appended below, once
    log.checkpoint()
    with log.store.session() as s:
        cps = log.checkpoints(s)
    if not cps:
        raise InputError("the audit log is empty: nothing to anchor", hint="append records first")
    append_anchor(target, cps[-1])
    if json_out:
        print_json(cps[-1].to_dict() | {"file": str(target)})
    else:
        console.print(f"anchored checkpoint {cps[-1].seq} in {target}")


@app.command("verify-bundle")
def verify_bundle_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory written by `daytwo audit export`.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="Trusted Ed25519 PEM public key (default: the bundle's own)."
        ),
    ] = None,
    json_out: bool = JSON_OPT,
) -> None:
    """Verify an evidence bundle offline (no database needed)."""
    from daytwo.tracing.bundle import verify_bundle

    _report(verify_bundle(directory, public_key), json_out, f"bundle {directory}")


@app.command("list")
def list_cmd(
    run: str | None = typer.Option(None, "--run", help="Only this run's records."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many records."),
    json_out: bool = JSON_OPT,
) -> None:
    """List audit records in chain order."""
    records = _log(create_key=False).records(run_id=run, limit=limit)
    if json_out:
        print_json([r.to_dict() for r in records])
        return
    from rich.table import Table

    table = Table("seq", "at", "kind", "actor", "subject", "run", "hash")
    for r in records:
        table.add_row(
            str(r.seq), r.at.isoformat(timespec="seconds"), r.kind, r.actor,
            r.subject or "", r.run_id or "", r.hash[:12],
        )  # fmt: skip
    console.print(table)


@app.command()
def checkpoint(json_out: bool = JSON_OPT) -> None:
    """Sign the current chain head with the key in <data_dir>/audit_ed25519.key."""
    cp = _log(create_key=True).checkpoint()
    if json_out:
        print_json(None if cp is None else cp.to_dict())
    elif cp is None:
        console.print("nothing to sign: the log is empty or its head is already checkpointed")
    else:
        console.print(f"signed checkpoint at record {cp.seq} with key {cp.key_id}")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Run id (daytwo.run.id).")],
    out: Annotated[Path, typer.Option("--out", help="New directory for the evidence bundle.")],
    json_out: bool = JSON_OPT,
) -> None:
    """Write an evidence bundle of RUN (records + checkpoint + public key) that verifies offline."""
    from daytwo.tracing.bundle import export_bundle

    info = export_bundle(_log(create_key=True), run, out)
    if json_out:
        print_json(info.to_dict())
    else:
        console.print(
            f"wrote {out}: {info.run_records} records of run {run} in records "
            f"{info.first_seq}..{info.last_seq}, sealed by checkpoint {info.checkpoint_seq}"
        )


@app.command("purge-traces")
def purge_traces_cmd(
    ttl_days: int | None = typer.Option(
        None, "--ttl-days", min=1, help="Keep this many days (default: trace_ttl_days setting)."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Delete spans and decision records past their TTL (audit records are kept)."""
    from daytwo.tracing.retention import purge_traces

    settings = state.settings()
    days = ttl_days or settings.trace_ttl_days
    log = _log(create_key=False)
    report = purge_traces(log.store, days)
    log.append("admin.purge_traces", "cli", data=report.to_dict() | {"ttl_days": days})
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(
            f"deleted {report.spans} spans and {report.decisions} decision records "
            f"older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
        )
