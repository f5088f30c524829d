"""Snapshot and restore of one collection: a single versioned, checksummed file.

The file is gzip-compressed NDJSON. Line 1 is the header (``format``, ``version``, the
collection's name and fusion); then one line per row of the collection's tables:
its live generations (embedder, chunking, ANN settings, state, seq), documents (with
their source identity and content hash), ACL entries, metadata rows and chunks (text,
token counts, vectors, seqs), each as ``{"t": table, "r": {column: value}}``; the last
line is the trailer with the number of rows and the SHA-256 of every line before it.
Rows are written by column name, so the format follows the tables (a column the
restoring version lacks is refused, not dropped).

Restore reads the file once, inside one write transaction: a foreign file (no gzip, no
header), a newer version, a truncated or altered file (trailer missing, count or checksum
wrong) raise :class:`~daytwo.exceptions.InputError` and the transaction rolls back, so
nothing is written. It restores into a collection that does not exist yet (the
snapshot's name or another), with new generation ids and chunk keys; the ANN indexes
are rebuilt from the restored chunks at the first search, vectors as stored (nothing is
embedded again), so searches answer as they did in the snapshotted store.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.knowledge.indexes import _NAME, LIVE_STATES, Indexes
from daytwo.store.base import new_id
from daytwo.store.tables.knowledge import (
    KbAcl,
    KbChunk,
    KbCollection,
    KbDocMeta,
    KbDocument,
    KbGeneration,
)

__all__ = ["FORMAT", "VERSION", "restore_collection", "snapshot_collection"]

FORMAT = "daytwo-kb-snapshot"
VERSION = 1
_TABLES: dict[str, sa.Table] = {
    "generation": KbGeneration.__table__,  # type: ignore[dict-item]
    "document": KbDocument.__table__,  # type: ignore[dict-item]
    "acl": KbAcl.__table__,  # type: ignore[dict-item]
    "meta": KbDocMeta.__table__,  # type: ignore[dict-item]
    "chunk": KbChunk.__table__,  # type: ignore[dict-item]
}
_BATCH = 1000


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
    return value


def snapshot_collection(
    kb: Indexes, collection: str, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Write ``collection`` to ``path`` (atomically: a temporary file renamed); its counts."""
    counts: dict[str, int] = {name: 0 for name in _TABLES}
    digest = hashlib.sha256()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with kb.store.session(snapshot=True) as session:
        coll = session.get(KbCollection, collection)
        if coll is None:
            raise NotFoundError(
                f"collection {collection!r} does not exist", hint="see daytwo kb stats"
            )
        gens = KbGeneration.__table__.c
        live = list(
            session.scalars(
                sa.select(gens.id).where(gens.collection == collection, gens.state.in_(LIVE_STATES))
            )
        )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "collection": collection,
            "fusion": coll.fusion,
            "active_generation": coll.active_generation,
        }
        try:
            with gzip.open(tmp, "wb") as out:

                def line(obj: dict[str, Any]) -> None:
                    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
                    digest.update(data + b"\n")
                    out.write(data + b"\n")

                line(header)
                for name, table in _TABLES.items():
                    c = table.c
                    where = (
                        c.id.in_(live)
                        if name == "generation"
                        else c.generation.in_(live)
                        if name == "chunk"
                        else c.collection == collection
                    )
                    order = [c.id] if "id" in c else list(table.primary_key.columns)
                    rows = session.connection().execution_options(yield_per=_BATCH)
                    for row in rows.execute(sa.select(table).where(where).order_by(*order)):
                        record = {k: _encode(v) for k, v in row._mapping.items()}
                        line({"t": name, "r": record})
                        counts[name] += 1
                        if progress is not None and counts[name] % _BATCH == 0:
                            progress(sum(counts.values()))
                total = sum(counts.values())
                trailer = {"t": "end", "rows": total, "sha256": digest.hexdigest()}
                out.write(json.dumps(trailer).encode() + b"\n")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    return {
        "collection": collection,
        "path": str(path),
        "rows": counts,
        "sha256": digest.hexdigest(),
    }


def _lines(fh: Iterable[bytes], source: Path) -> Iterator[bytes]:
    try:
        yield from fh
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{source} is damaged: {exc}", hint="take the snapshot again") from None


def restore_collection(
    kb: Indexes,
    path: Path,
    collection: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Restore the snapshot at ``path`` as ``collection`` (default: its own name), which
    must not exist; nothing is written unless the whole file checks out."""
    foreign = InputError(
        f"{path} is not a daytwo knowledge snapshot",
        hint="give a file written by daytwo kb snapshot",
    )
    try:
        fh = gzip.open(path, "rb")  # noqa: SIM115  (closed by the with below)
        first = fh.readline()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist", hint="check the path") from None
    except (OSError, EOFError, zlib.error):
        raise foreign from None
    with fh:
        try:
            header = json.loads(first)
        except ValueError:
            raise foreign from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise foreign
        if not isinstance(header.get("version"), int) or header["version"] > VERSION:
            raise InputError(
                f"{path} is snapshot format version {header.get('version')}; this daytwo "
                f"reads up to {VERSION}",
                hint="restore it with a newer daytwo",
            )
        target = collection or str(header["collection"])
        digest = hashlib.sha256(first)
        counts: dict[str, int] = {name: 0 for name in _TABLES}
        gen_ids: dict[str, str] = {}
        pending: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
        trailer: dict[str, Any] | None = None
        if not _NAME.match(target):
            raise InputError(
                f"collection name {target!r} is not valid",
                hint="use letters, digits, '_', '.', '-' (at most 200 characters)",
            )
        with kb.store.session(write=True) as session:
            if session.get(KbCollection, target) is not None:
                raise ConflictError(
                    f"collection {target!r} already exists",
                    hint="restore into a new name: --collection NEW",
                )

            def flush(name: str) -> None:
                if pending[name]:
                    session.execute(_TABLES[name].insert(), pending[name])
                    pending[name] = []

            for raw in _lines(fh, path):
                if trailer is not None:
                    raise InputError(f"{path} has data after its end", hint="take it again")
                try:
                    obj = json.loads(raw)
                except ValueError:
                    raise InputError(f"{path} is damaged", hint="take it again") from None
                if obj.get("t") == "end":
                    trailer = obj
                    continue
                digest.update(raw)
                name, record = obj.get("t"), obj.get("r")
                if name not in _TABLES or not isinstance(record, dict):
                    raise InputError(f"{path} is damaged", hint="take the snapshot again")
                row = _row(name, record, target, gen_ids, path)
                if name == "generation":
                    session.execute(_TABLES[name].insert(), [row])
                else:
                    pending[name].append(row)
                    if len(pending[name]) >= _BATCH:
                        for table in _TABLES:  # documents before what refers to them
                            flush(table)
                counts[name] += 1
                if progress is not None and sum(counts.values()) % _BATCH == 0:
                    progress(sum(counts.values()))
            for table in _TABLES:
                flush(table)
            if (
                trailer is None
                or trailer.get("rows") != sum(counts.values())
                or trailer.get("sha256") != digest.hexdigest()
            ):
                raise InputError(
                    f"{path} is truncated or altered (its checksum does not match)",
                    hint="take the snapshot again; nothing was restored",
                )
            active = gen_ids.get(str(header.get("active_generation")))
            if active is None:
                raise InputError(f"{path} has no active generation", hint="take it again")
            session.add(
                KbCollection(
                    name=target,
                    tenant="default",
                    active_generation=active,
                    fusion=header.get("fusion") or {},
                )
            )
    from daytwo.knowledge.ingest import refresh_statistics

    refresh_statistics(kb)
    return {"collection": target, "rows": counts, "sha256": digest.hexdigest()}


def _row(
    name: str, record: dict[str, Any], target: str, gen_ids: dict[str, str], path: Path
) -> dict[str, Any]:
    table = _TABLES[name]
    unknown = set(record) - set(table.c.keys())
    if unknown:
        raise InputError(
            f"{path} has {name} columns this daytwo does not know: {', '.join(sorted(unknown))}",
            hint="restore it with the daytwo version that wrote it, or a newer one",
        )
    row = {k: _decode(v) for k, v in record.items()}
    row["collection"] = target
    if name == "generation":
        gen_ids[str(row["id"])] = row["id"] = f"g{new_id()[:15]}"
    elif name == "chunk":
        row.pop("id", None)
        if row.get("generation") not in gen_ids:
            raise InputError(f"{path} is damaged (a chunk of no generation)", hint="take it again")
        row["generation"] = gen_ids[row["generation"]]
    return row
