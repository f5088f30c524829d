"""`daytwo kb` day-2 commands: migrate, generations, cutover, rollback, erase, vacuum, health.

Registered on the ``kb`` Typer app of :mod:`daytwo.cli.kb` when this module is imported
(``cli/main.py`` imports it).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import typer

from daytwo.cli._output import console, print_json, progress_bar
from daytwo.cli.kb import app, open_kb

__all__ = ["generations_app"]

_JSON = typer.Option(False, "--json", help="Print JSON.")
_COLLECTION = typer.Option("default", "--collection", "-c", help="Collection name.")


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@app.command()
def migrate(
    collection: str = _COLLECTION,
    embedder: str | None = typer.Option(
        None, "--embedder", help="Target embedder name (default: same)."
    ),
    chunking: str | None = typer.Option(
        None, "--chunking", help="Target chunking, e.g. size=256,overlap=32 (default: same)."
    ),
    analyzer: str | None = typer.Option(
        None,
        "--analyzer",
        help="Target keyword analyzer: english, simple or a language such as german "
        "(default: same).",
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Documents per backfill batch."),
    shadow_reads: float | None = typer.Option(
        None, "--shadow-reads", help="Share of live queries also run on the shadow (0..1)."
    ),
    canary: float | None = typer.Option(
        None, "--canary", help="Percent of queries served by the shadow once backfilled."
    ),
    actor: str | None = typer.Option(None, "--actor", help="Who runs it (default: OS user)."),
    estimate: bool = typer.Option(
        False, "--estimate", help="Predict time and storage from a sample; start nothing."
    ),
    sample_cap: int = typer.Option(
        2000, "--sample-cap", help="With --estimate: at most this many sampled documents."
    ),
    json_out: bool = _JSON,
) -> None:
    """Create a shadow generation and backfill it (rerun to resume after a crash)."""
    from daytwo.knowledge.generations import backfill, parse_chunking, start_migration

    kb = open_kb()
    active = kb.active_generation(collection)
    embedder = embedder or active.embedder
    config = parse_chunking(chunking, active.chunking) if chunking else None
    if estimate:
        _print_estimate(kb, collection, embedder, config, sample_cap, json_out)
        return
    status = start_migration(
        kb,
        collection,
        embedder,
        chunking=config,
        shadow_read_rate=shadow_reads,
        canary_percent=canary,
        actor=_actor(actor),
        analyzer=analyzer,
    )
    with progress_bar(disable=json_out) as bar:
        task = bar.add_task(
            f"backfilling {status.target_generation}", total=status.total, completed=status.done
        )

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        status = backfill(kb, status.id, batch_size=batch_size, progress=progress)
    kb.close()
    if json_out:
        print_json(status.to_dict())
        return
    console.print(
        f"{collection}: shadow generation {status.target_generation} ({embedder}) is "
        f"{status.state}, {status.done}/{status.total} documents; next: daytwo kb cutover "
        f"--collection {collection}",
        markup=False,
    )


def _print_estimate(
    kb: Any,
    collection: str,
    embedder: str,
    config: Any,
    sample_cap: int,
    json_out: bool,
) -> None:
    from daytwo.knowledge.estimate import estimate_migration

    try:
        est = estimate_migration(kb, collection, embedder, chunking=config, cap=sample_cap)
    finally:
        kb.close()
    if json_out:
        print_json(est.to_dict())
        return
    st, cur = est.storage, est.current_storage
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in est.seconds_parts.items())
    console.print(
        f"{collection}: a generation with {est.embedder} (dim {est.dim}, chunking "
        f"size={est.chunking['size']},overlap={est.chunking['overlap']}) would take about "
        f"{est.seconds:.1f} s ({parts}) for {est.documents} documents, ~{est.chunks} chunks\n"
        f"  storage ~{_mb(st['total'])}: vectors {_mb(st['vectors'])}, index "
        f"{_mb(st['index'])}, text {_mb(st['text'])} (active generation: {_mb(cur['total'])})\n"
        f"  from a sample of {est.sample_documents} documents ({est.sample_chunks} chunks, "
        f"{est.sample_share:.1%} of the text); nothing was started",
        markup=False,
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


generations_app = typer.Typer(help="Index generations: state, progress, shadow reads, prune.")
app.add_typer(generations_app, name="generations")


@generations_app.callback(invoke_without_command=True)
def generations(
    ctx: typer.Context,
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this one."),
    golden: Path | None = typer.Option(  # noqa: B008
        None, "--golden", help='JSONL golden set {"query", "relevant": [ids]}: nDCG@10 of both.'
    ),
    principal: str = typer.Option("", "--as", help="Principal for the golden-set searches."),
    group: list[str] = typer.Option([], "--group", "-g", help="Groups of the principal."),  # noqa: B008
    json_out: bool = _JSON,
) -> None:
    """Show every generation: state, backfill progress, shadow-read overlap, nDCG."""
    if ctx.invoked_subcommand is not None:
        return
    from daytwo.exceptions import InputError
    from daytwo.knowledge.shadow_reads import generations_status, golden_ndcg

    kb = open_kb()
    data = generations_status(kb, collection)
    if golden is not None:
        if collection is None or not (principal or group):
            raise InputError(
                "--golden needs --collection and a principal (--as or --group)",
                hint="for example --collection docs --golden set.jsonl --as alice",
            )
        ndcg = golden_ndcg(kb, collection, golden, principal, group)
        for coll in data["collections"]:
            for gen in coll["generations"]:
                gen["ndcg_at_10"] = ndcg.get(gen["id"])
    kb.close()
    if json_out:
        print_json(data)
        return
    for coll in data["collections"]:
        console.print(f"[bold]{coll['name']}[/] ({coll['documents']} documents)")
        for gen in coll["generations"]:
            extra = f", nDCG@10 {gen['ndcg_at_10']}" if gen.get("ndcg_at_10") is not None else ""
            console.print(
                f"  {gen['id']} {gen['state']:<7} {gen['embedder']} dim {gen['dim']} "
                f"{gen['chunks']} chunks{extra}",
                markup=False,
            )
        mig = coll["migration"]
        if mig:
            reads = mig.get("shadow_reads", {})
            console.print(
                f"  migration {mig['id']}: {mig['state']}, "
                f"{mig['progress']['done']}/{mig['progress']['total']} backfilled, "
                f"{reads.get('samples', 0)} shadow reads, overlap@10 {reads.get('overlap_at_10')}",
                markup=False,
            )


@generations_app.command("prune")
def generations_prune(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this one."),
    actor: str | None = typer.Option(None, "--actor", help="Who runs it (default: OS user)."),
    json_out: bool = _JSON,
) -> None:
    """Delete the generations that lost a cutover (or a rolled-back migration's shadow)."""
    from daytwo.knowledge.generations import prune

    kb = open_kb()
    pruned = prune(kb, collection, actor=_actor(actor))
    kb.close()
    if json_out:
        print_json({"pruned": pruned})
        return
    if not pruned:
        console.print("nothing to prune")
    for item in pruned:
        console.print(
            f"{item['collection']}: pruned {item['pruned_generation']} "
            f"({item['chunks_deleted']} chunks), migration {item['state']}",
            markup=False,
        )


def _switch(collection: str, actor: str | None, json_out: bool, *, back: bool) -> None:
    from daytwo.knowledge.generations import cutover as do_cutover
    from daytwo.knowledge.generations import rollback as do_rollback

    kb = open_kb()
    status = (do_rollback if back else do_cutover)(kb, collection, actor=_actor(actor))
    kb.close()
    if json_out:
        print_json(status.to_dict())
        return
    active = status.source_generation if back else status.target_generation
    console.print(f"{collection}: active generation is now {active}", markup=False)


@app.command()
def cutover(
    collection: str = _COLLECTION,
    actor: str | None = typer.Option(None, "--actor", help="Who runs it (default: OS user)."),
    json_out: bool = _JSON,
) -> None:
    """Make the backfilled shadow generation active (one atomic switch)."""
    _switch(collection, actor, json_out, back=False)


@app.command()
def rollback(
    collection: str = _COLLECTION,
    actor: str | None = typer.Option(None, "--actor", help="Who runs it (default: OS user)."),
    json_out: bool = _JSON,
) -> None:
    """Switch back to the previous generation after a cutover."""
    _switch(collection, actor, json_out, back=True)


@app.command()
def erase(
    collection: str = _COLLECTION,
    document: str | None = typer.Option(None, "--document", help="Erase this document id."),
    where: str | None = typer.Option(None, "--where", help="Erase documents with key=value."),
    subject: str | None = typer.Option(
        None, "--subject", help="Erase documents about this data subject (metadata 'subject')."
    ),
    actor: str | None = typer.Option(None, "--actor", help="Who asks (default: OS user)."),
    auto_vacuum_threshold: float = typer.Option(
        0.2, "--auto-vacuum-threshold", help="Vacuum when the tombstone ratio passes this."
    ),
    json_out: bool = _JSON,
) -> None:
    """Erase documents everywhere (GDPR) and write a receipt to the audit log."""
    from daytwo.knowledge.erase import erase as do_erase
    from daytwo.knowledge.maintenance import auto_vacuum

    kb = open_kb()
    receipt = do_erase(
        kb, collection, document=document, where=where, subject=subject, actor=_actor(actor)
    )
    vacuumed = auto_vacuum(kb, collection, threshold=auto_vacuum_threshold)
    kb.close()
    data: dict[str, Any] = {**receipt.to_dict(), "auto_vacuum": vacuumed}
    if json_out:
        print_json(data)
        return
    console.print(
        f"{collection}: erased {receipt.documents} documents "
        f"({sum(receipt.chunks.values())} chunks); receipt: audit record {receipt.audit_seq}"
        + ("; vacuumed" if vacuumed else ""),
        markup=False,
    )


@app.command()
def vacuum(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this one."),
    storage: bool = typer.Option(
        True, "--storage/--no-storage", help="Also compact the database (FTS, VACUUM)."
    ),
    if_above: float | None = typer.Option(
        None, "--if-above", help="Only when a tombstone ratio passes this threshold."
    ),
    json_out: bool = _JSON,
) -> None:
    """Compact ANN indexes online (searches keep working) and the database."""
    from daytwo.knowledge.maintenance import auto_vacuum
    from daytwo.knowledge.maintenance import vacuum as do_vacuum

    kb = open_kb()
    if if_above is not None:
        result = auto_vacuum(kb, collection, threshold=if_above, storage=storage)
    else:
        result = do_vacuum(kb, collection, storage=storage)
    kb.close()
    if json_out:
        print_json(result or {"generations": [], "skipped": "below threshold"})
        return
    if result is None:
        console.print("tombstone ratio below the threshold: nothing to do")
        return
    for gen in result["generations"]:
        console.print(
            f"{gen['collection']}/{gen['generation']}: {gen['vectors']} vectors, "
            f"{gen['tombstones_removed']} tombstones removed in {gen['seconds']}s",
            markup=False,
        )


@app.command()
def health(
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this one."),
    samples: int = typer.Option(50, "--samples", help="Recall-probe queries per generation."),
    json_out: bool = _JSON,
) -> None:
    """Tombstone ratio and ANN recall@10 vs exact search of every live generation."""
    from daytwo.knowledge.maintenance import health as do_health

    kb = open_kb()
    data = do_health(kb, collection, samples=samples)
    kb.close()
    if json_out:
        print_json(data)
        return
    for gen in data["generations"]:
        console.print(
            f"{gen['collection']}/{gen['generation']} ({gen['state']}): {gen['vectors']} "
            f"vectors, tombstone ratio {gen['tombstone_ratio']}, "
            f"recall@10 {gen['recall_at_10']}",
            markup=False,
        )


@app.command()
def follow(
    query: str = typer.Argument(..., help="The query text."),
    principal: str = typer.Option(..., "--as", help="Retrieve as this principal."),
    group: list[str] = typer.Option([], "--group", "-g", help="Groups of the principal."),  # noqa: B008
    collection: str = _COLLECTION,
    max_depth: int = typer.Option(2, "--max-depth", help="Reference hops to follow."),
    max_tokens: int = typer.Option(4000, "--max-tokens", help="Token budget of the result."),
    max_nodes: int = typer.Option(50, "--max-nodes", help="Documents at most."),
    k: int = typer.Option(5, "--k", "-k", help="Search results to start from."),
    model: str | None = typer.Option(
        None, "--model", help="Count tokens with this model profile's tokenizer."
    ),
    json_out: bool = _JSON,
) -> None:
    """Search, then follow references between documents (cycle-safe, budgeted)."""
    from daytwo.knowledge.recursive import retrieve_recursive

    kb = open_kb()
    result = retrieve_recursive(
        kb,
        collection,
        query,
        principal,
        group,
        max_depth=max_depth,
        max_tokens=max_tokens,
        max_nodes=max_nodes,
        k=k,
        model=model,
    )
    kb.close()
    if json_out:
        print_json(result.to_dict())
        return
    for node in result.nodes:
        console.print(
            f"{'  ' * node.depth}{node.doc_id} (depth {node.depth}, {node.tokens} tokens)",
            markup=False,
        )
    console.print(
        f"stopped: {result.stop_reason}; {len(result.nodes)} documents, {result.tokens} tokens "
        f"({result.tokenizer}, {'exact' if result.exact_tokens else 'estimate'})",
        markup=False,
    )
