"""`daytwo kb`: ingest sources, search as a principal, collection stats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json, progress_bar
from daytwo.store.analyzers import STEMMED

if TYPE_CHECKING:
    from daytwo.knowledge import KnowledgeBase

__all__ = ["app", "open_kb"]

app = typer.Typer(
    help="Knowledge base: ingest, hybrid search with access control, stats.",
    no_args_is_help=True,
)


def open_kb() -> KnowledgeBase:
    """The knowledge base of the configured store and data directory."""
    from daytwo.knowledge import KnowledgeBase

    settings = state.settings()
    return KnowledgeBase(
        state.store(), settings.data_dir, embedder=settings.embedder, rerankers=settings.rerankers
    )


def _parse_filters(values: list[str]) -> dict[str, str]:
    from daytwo.exceptions import InputError

    filters: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InputError(f"filter {value!r} is not key=value", hint="e.g. --filter type=md")
        filters[key] = val
    return filters


def _search_filter(values: list[str], where: str | None) -> dict[str, Any] | None:
    """The filter of ``--filter key=value`` (string equalities) and ``--where JSON``."""
    import json
    from pathlib import Path

    from daytwo.exceptions import InputError
    from daytwo.knowledge.filters import parse_filter

    flat = _parse_filters(values)
    if where is None:
        return dict(flat) or None
    text = where
    if where.startswith("@"):
        try:
            text = Path(where[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the filter file {where[1:]!r}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--where is not JSON: {exc.msg} at character {exc.pos}",
            hint="quote it for the shell: --where '{\"must\": [...]}'",
        ) from exc
    parsed = parse_filter(data)
    structured = parsed.to_dict() if parsed is not None else {}
    if not flat:
        return structured or None
    must = [{"key": k, "match": {"value": v}} for k, v in flat.items()]
    return {"must": [*must, structured] if structured else must}


def _keyword(syntax: str, title_boost: float, highlight: bool) -> Any:
    from daytwo.knowledge.keyword_query import KeywordOptions

    options = KeywordOptions(syntax, title_boost, highlight)  # type: ignore[arg-type]
    return options if options.custom or highlight else None


def _fusion(method: str | None, rrf_k: int | None, alpha: float | None) -> Any:
    from daytwo.exceptions import InputError
    from daytwo.knowledge.fusion import FusionConfig

    if method is None:
        if rrf_k is not None or alpha is not None:
            raise InputError("--rrf-k and --alpha need --fusion", hint="e.g. --fusion convex")
        return None
    data: dict[str, Any] = {"method": method}
    if rrf_k is not None:
        data["rrf_k"] = rrf_k
    if alpha is not None:
        data["alpha"] = alpha
    return FusionConfig.from_dict(data)


_LANGUAGES = ", ".join(STEMMED)


@app.command()
def ingest(
    target: str = typer.Argument(
        ...,
        help="Folder, file (txt/md/html/pdf/jsonl/csv; e-mail: eml/mbox/Maildir; ticket "
        "exports: jsonl/csv; images png/jpg and audio wav/mp3/ogg with the multimodal "
        "extra) or SQL URL.",
    ),
    collection: str = typer.Option("default", "--collection", "-c", help="Collection name."),
    acl: list[str] = typer.Option(  # noqa: B008
        [], "--acl", help="Who may read: user:NAME or group:NAME (repeatable)."
    ),
    private: bool = typer.Option(
        False, "--private", help="Deny everyone not in --acl (default: group:everyone)."
    ),
    table: str | None = typer.Option(None, "--table", help="SQL source: table to read."),
    query: str | None = typer.Option(None, "--query", help="SQL source: query to read."),
    id_column: str = typer.Option("id", "--id-column", help="SQL source: id column."),
    text_column: str = typer.Option("text", "--text-column", help="SQL source: text column."),
    title_column: str = typer.Option("title", "--title-column", help="SQL source: title column."),
    source: str | None = typer.Option(
        None,
        "--source",
        help="Name of this source (default: from the path or URL). A sync only changes "
        "its own source's documents; ids another source holds are skipped.",
    ),
    ticket_format: str | None = typer.Option(
        None,
        "--format",
        help="Read JSONL/CSV files as a ticket export: zendesk, jira, github "
        "(default: detected from the keys or the CSV header).",
    ),
    analyzer: str | None = typer.Option(
        None,
        "--analyzer",
        help="Keyword analyzer of a new collection: english (default; Porter/Snowball "
        "stems, English stop words), simple (no stemming) or a language: " + _LANGUAGES + ". "
        "An existing collection keeps its own; change it with daytwo kb migrate --analyzer.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the ingest report as JSON."),
) -> None:
    """Sync a source into a collection: new and changed documents indexed, vanished ones deleted."""
    sql: dict[str, Any] = {}
    if "://" in target:
        sql = {
            "table": table,
            "query": query,
            "id_column": id_column,
            "text_column": text_column,
            "title_column": title_column,
        }
    kb = open_kb()
    with progress_bar(disable=json_out) as bar:
        task = bar.add_task(f"ingesting into {collection}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, description=f"ingesting into {collection}")
            bar.update(task, completed=done, total=total)

        def reading(item: str, done: float, total: float) -> None:
            # a long recording being transcribed: its minutes, on the same bar
            bar.update(
                task,
                description=f"transcribing {item} (minutes)",
                completed=int(done // 60),
                total=max(1, int(-(-total // 60))),
            )

        report = kb.ingest_path(
            target,
            collection,
            acl=acl or None,
            private=private,
            progress=progress,
            source_name=source,
            ticket_format=ticket_format,
            read_progress=reading,
            analyzer=analyzer,
            **sql,
        )
    kb.close()
    data = report.to_dict()
    if json_out:
        print_json(data)
        return
    console.print(
        f"{collection}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.deleted} deleted, {len(report.skipped)} skipped; "
        f"{report.chunks} chunks in {report.seconds:.1f}s "
        f"(embedding {report.embed_seconds:.1f}s, indexing {report.index_seconds:.1f}s)",
        markup=False,
    )
    for skip in report.skipped:
        console.print(f"  skipped {skip.item}: {skip.reason}", style="yellow", markup=False)


@app.command()
def sources(
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Only this collection (default: all)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the sources of each collection and how many documents each holds."""
    kb = open_kb()
    rows = kb.sources(collection)
    kb.close()
    if json_out:
        print_json({"sources": rows})
        return
    for row in rows:
        console.print(
            f"{row['collection']}: {row['source']} ({row['documents']} documents, "
            f"updated {row['updated_at']})",
            markup=False,
        )


@app.command()
def search(
    query: str = typer.Argument(..., help="The query text."),
    principal: str = typer.Option(..., "--as", help="Search as this principal."),
    group: list[str] = typer.Option([], "--group", "-g", help="Groups of the principal."),  # noqa: B008
    collection: str = typer.Option("default", "--collection", "-c", help="Collection name."),
    mode: str = typer.Option("hybrid", "--mode", help="bm25, dense or hybrid."),
    k: int = typer.Option(10, "--k", "-k", help="Number of results."),
    filters: list[str] = typer.Option(  # noqa: B008
        [], "--filter", help="Metadata equality key=value, the value a string (repeatable)."
    ),
    where: str | None = typer.Option(
        None,
        "--where",
        help='Typed metadata filter as JSON (or @FILE), e.g. \'{"must": [{"key": "year", '
        '"range": {"gte": 2020}}]}\'; see README.md "Search".',
    ),
    fusion: str | None = typer.Option(
        None, "--fusion", help="Hybrid fusion for this search: rrf, convex or dbsf."
    ),
    rrf_k: int | None = typer.Option(None, "--rrf-k", help="RRF k (with --fusion rrf)."),
    alpha: float | None = typer.Option(
        None, "--alpha", help="Dense weight in [0, 1] (with --fusion convex)."
    ),
    group_by: str | None = typer.Option(
        None, "--group-by", help="'document': one hit per document, k counts documents."
    ),
    group_size: int = typer.Option(1, "--group-size", help="Chunks per document when grouped."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="next_cursor of the previous page of this same search."
    ),
    syntax: str = typer.Option(
        "plain", "--syntax", help='plain, or boolean: AND OR NOT -x ( ) "phrases".'
    ),
    title_boost: float = typer.Option(1.0, "--title-boost", help="Weight of title terms."),
    highlight: bool = typer.Option(False, "--highlight", help="Offsets of the query terms."),
    rerank: str | None = typer.Option(
        None, "--rerank", help="Rescore with this configured reranker (setting 'rerankers')."
    ),
    rerank_depth: int = typer.Option(
        50, "--rerank-depth", help="How many first hits the reranker rescores (with --rerank)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Search a collection as a principal: scores and which index contributed each hit."""
    from rich.table import Table

    from daytwo.knowledge.search import SearchRequest

    request = SearchRequest(
        collection,
        query,
        principal,
        tuple(group),
        mode,
        k,
        _search_filter(filters, where),
        fusion=_fusion(fusion, rrf_k, alpha),
        group_by=group_by,
        group_size=group_size,
        cursor=cursor,
        keyword=_keyword(syntax, title_boost, highlight),
        rerank=rerank,
        rerank_depth=rerank_depth,
    )
    kb = open_kb()
    try:
        hits = kb.run(request)
    finally:
        kb.close()
    if json_out:
        print_json(
            {
                "collection": collection,
                "query": query,
                "principal": principal,
                "mode": mode,
                "hits": [h.to_dict() for h in hits],
                "next_cursor": hits.next_cursor,
            }
        )
        return
    if not hits:
        console.print(f"no results for {principal} in {collection}", markup=False)
        return
    table = Table(title=f"{mode} search of {collection} as {principal}")
    columns = ("#", "doc", "score", "bm25", "dense") + (("rerank",) if rerank else ()) + ("text",)
    for column in columns:
        table.add_column(column)
    for rank, hit in enumerate(hits, start=1):
        parts = hit.contributions

        def cell(name: str, parts: dict[str, dict[str, float]] = parts) -> str:
            part = parts.get(name)
            return f"#{int(part['rank'])} {part['score']:.3f}" if part else "-"

        table.add_row(
            str(rank),
            hit.doc_id,
            f"{hit.score:.4f}",
            cell("bm25"),
            cell("dense"),
            *((cell("rerank"),) if rerank else ()),
            hit.text[:80].replace("\n", " "),
        )
    console.print(table)
    if hits.next_cursor:
        console.print(f"next page: --cursor {hits.next_cursor}", markup=False)


@app.command()
def stats(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this one."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Documents, chunks, generations and index state per collection."""
    kb = open_kb()
    data = kb.stats(collection)
    if json_out:
        print_json(data)
        return
    if not data["collections"]:
        console.print("no collections yet (daytwo kb ingest PATH)", markup=False)
    for c in data["collections"]:
        gens = ", ".join(
            f"{g['id']} {g['state']} {g['embedder']} {g['chunks']} chunks seq {g['seq']}"
            for g in c["generations"]
        )
        console.print(
            f"{c['name']}: {c['documents']} documents ({c['private_documents']} private) "
            f"from {c['sources']} sources; fusion {c['fusion']['method']}; {gens}",
            markup=False,
        )
