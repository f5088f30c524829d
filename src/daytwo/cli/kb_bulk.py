"""`daytwo kb bulk|snapshot|restore`: NDJSON bulk writes, and a collection to and from a file.

Registered on the ``kb`` Typer app of :mod:`daytwo.cli.kb` when this module is imported
(``cli/main.py`` imports it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from daytwo.cli._output import console, print_json, progress_bar
from daytwo.cli.kb import app, open_kb

if TYPE_CHECKING:
    from daytwo.knowledge import KnowledgeBase

__all__: list[str] = []

_CHUNK = 1 << 16


@app.command()
def bulk(
    path: str = typer.Argument(..., help="NDJSON file of upserts and deletes ('-': stdin)."),
    collection: str = typer.Option("default", "--collection", "-c", help="Collection name."),
    json_out: bool = typer.Option(False, "--json", help="Print every line's result as JSON."),
) -> None:
    """Upsert and delete documents from NDJSON lines, read as a stream.

    Each line: {"doc_id", "text", "title", "metadata", "acl", "private"} (an upsert) or
    {"op": "delete", "doc_id"}. A bad line is reported with its number and never stops
    the others; each item is written atomically. Exit code 1 when a line failed.
    """
    from daytwo.exceptions import InputError
    from daytwo.knowledge.bulk import BulkWriter, LineSplitter

    kb = open_kb()
    writer = BulkWriter(kb, collection)
    splitter = LineSplitter()
    results = []
    try:
        stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    try:
        with stream:
            while chunk := stream.read(_CHUNK):
                results.extend(writer.feed(splitter.push(chunk)))
            results.extend(writer.feed(splitter.end()))
            results.extend(writer.finish())
    finally:
        kb.close()
    summary = writer.summary()
    results.sort(key=lambda r: r.line)
    if json_out:
        print_json({"collection": collection, **summary, "items": [r.to_dict() for r in results]})
    else:
        for r in results:
            if r.status == "error":
                console.print(f"[red]line {r.line}[/red]: {r.error}")
        console.print(
            f"{collection}: {summary['stored']} stored, {summary['erased']} erased, "
            f"{summary['not_found']} not found, {summary['error']} failed "
            f"({summary['lines']} lines)"
        )
    if summary["error"]:
        raise typer.Exit(1)


def _with_row_progress(
    label: str,
    json_out: bool,
    work: Callable[[KnowledgeBase, Callable[[int], None]], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``work(kb, advance)`` on the CLI's knowledge base with a rows-done progress bar."""
    kb = open_kb()
    try:
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(label, total=None)
            return work(kb, lambda done: bar.update(task, completed=done))
    finally:
        kb.close()


@app.command()
def snapshot(
    path: str = typer.Argument(..., help="File to write (gzip NDJSON, replaced atomically)."),
    collection: str = typer.Option("default", "--collection", "-c", help="Collection name."),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Write a collection (documents, ACLs, metadata, generations with their chunks and
    vectors, source identity) to one versioned, checksummed file."""
    from daytwo.knowledge.snapshot import snapshot_collection

    report = _with_row_progress(
        "snapshot (rows)",
        json_out,
        lambda kb, advance: snapshot_collection(kb, collection, Path(path), progress=advance),
    )
    if json_out:
        print_json(report)
    else:
        rows = ", ".join(f"{n} {k}s" for k, n in report["rows"].items())
        console.print(f"{collection} → {path}: {rows} (sha256 {report['sha256'][:16]}…)")


@app.command()
def restore(
    path: str = typer.Argument(..., help="A file written by daytwo kb snapshot."),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Restore under this name (default: the snapshot's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Restore a snapshot into a collection that does not exist yet. The file is checked
    whole (format, version, checksum) inside one transaction: nothing is written unless
    it all checks out."""
    from daytwo.knowledge.snapshot import restore_collection

    report = _with_row_progress(
        "restore (rows)",
        json_out,
        lambda kb, advance: restore_collection(kb, Path(path), collection, progress=advance),
    )
    if json_out:
        print_json(report)
    else:
        rows = ", ".join(f"{n} {k}s" for k, n in report["rows"].items())
        console.print(f"{path} → {report['collection']}: {rows}")
