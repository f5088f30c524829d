"""Bulk writes: NDJSON lines of upserts and deletes, read as a stream, one result per line.

Each line is one JSON object: ``{"op": "upsert", "doc_id", "text", "title", "metadata",
"acl", "private"}`` (``op`` defaults to ``upsert``) or ``{"op": "delete", "doc_id"}``.
Lines are parsed and checked one by one; a bad line gets an ``error`` result naming the
problem and never stops the others. Good lines are written in batches (their chunks
embedded together, one transaction per batch); should a batch's transaction fail, its
items are written one by one, so each item is atomic and one bad item cannot take its
neighbours down. Within a request, items apply in line order: a batch is flushed before
a second write to the same document id.

:class:`BulkWriter` is fed lines as they arrive (the REST route from the request stream,
the CLI from the file), so a request is never held in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import DaytwoError, InputError
from daytwo.knowledge.acl import default_acl
from daytwo.knowledge.ingest import DocWrite, analyze_grown_tables, apply_writes, content_hash

__all__ = [
    "BATCH",
    "MAX_LINE_BYTES",
    "BulkResult",
    "BulkWriter",
    "LineSplitter",
    "check_text",
    "parse_document",
    "split_lines",
]

BATCH = 64
"""Good items written (and embedded) together."""
MAX_LINE_BYTES = 1_000_000
"""A longer line is an item error (its bytes are skipped up to the next newline)."""
_ITEM_ERRORS = (DaytwoError, sa.exc.DBAPIError)
_FIELDS = {"op", "doc_id", "text", "title", "metadata", "acl", "private"}


@dataclass
class BulkResult:
    """The outcome of one line."""

    line: int
    op: str
    doc_id: str | None
    status: str  # stored | erased | not_found | error
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "line": self.line,
            "op": self.op,
            "doc_id": self.doc_id,
            "status": self.status,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def check_text(name: str, value: str) -> None:
    """InputError for text PostgreSQL cannot store (a NUL character), on every backend."""
    if "\x00" in value:
        raise InputError(
            f"{name} contains a NUL character", hint="remove the \\u0000 characters from it"
        )


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise InputError("metadata must be an object", hint='for example {"lang": "en"}')
    for key, value in metadata.items():
        check_text("a metadata key", str(key))
        if isinstance(value, str):
            check_text(f"metadata {key!r}", value)
    return metadata


def parse_document(obj: dict[str, Any]) -> DocWrite:
    """A checked upsert item (InputError naming the problem otherwise)."""
    doc_id, text, title = obj.get("doc_id"), obj.get("text"), obj.get("title", "")
    if not isinstance(doc_id, str) or not 1 <= len(doc_id) <= 512:
        raise InputError("doc_id must be a string of 1 to 512 characters", hint="add a doc_id")
    if not isinstance(text, str):
        raise InputError("text must be a string", hint='add "text": "..."')
    if not isinstance(title, str) or len(title) > 1000:
        raise InputError("title must be a string of at most 1000 characters", hint="shorten it")
    for name, value in (("doc_id", doc_id), ("text", text), ("title", title)):
        check_text(name, value)
    metadata = _check_metadata(obj.get("metadata") or {})
    acl, private = obj.get("acl"), obj.get("private", False)
    if acl is not None and (not isinstance(acl, list) or not all(isinstance(e, str) for e in acl)):
        raise InputError("acl must be a list of strings", hint='e.g. ["group:support"]')
    if not isinstance(private, bool):
        raise InputError("private must be true or false", hint='e.g. "private": true')
    entries = default_acl(acl, private)
    digest = content_hash(title, text, metadata, entries, private)
    return DocWrite(doc_id, text, title, metadata, entries, private, "api", digest)


class LineSplitter:
    """Cuts a byte stream into lines as it arrives (without the newline); a line over
    :data:`MAX_LINE_BYTES` comes out as None, its bytes dropped as they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skipping = False

    def push(self, chunk: bytes) -> list[bytes | None]:
        """The lines ``chunk`` completes."""
        out: list[bytes | None] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not self._skipping:
                self._buffer += piece
                if len(self._buffer) > MAX_LINE_BYTES:
                    self._buffer.clear()
                    self._skipping = True
            if end < 0:
                return out
            out.append(None if self._skipping else bytes(self._buffer))
            self._buffer.clear()
            self._skipping = False
            start = end + 1

    def end(self) -> list[bytes | None]:
        """The last line, when the stream does not end with a newline."""
        if self._skipping:
            return [None]
        rest = bytes(self._buffer)
        self._buffer.clear()
        return [rest] if rest.strip() else []


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    """The lines of a byte stream (see :class:`LineSplitter`)."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.push(chunk)
    yield from splitter.end()


@dataclass
class BulkWriter:
    """Writes bulk lines into one collection; :meth:`feed` returns results as batches land."""

    kb: Any
    collection: str
    line: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {"stored": 0, "erased": 0, "not_found": 0, "error": 0}
    )
    _pending: list[tuple[int, DocWrite | str]] = field(default_factory=list)

    def feed(self, lines: Iterable[bytes | None]) -> list[BulkResult]:
        """Take lines (None: an over-long line); return the results of what was written."""
        out: list[BulkResult] = []
        for raw in lines:
            self.line += 1
            if raw is not None and not raw.strip():
                continue  # blank lines are allowed (and counted for line numbers)
            try:
                item = self._parse(raw)
            except InputError as exc:
                out.append(self._error(self.line, exc))
                continue
            doc_id = item.doc_id if isinstance(item, DocWrite) else item
            if any(_doc_id(p) == doc_id for _, p in self._pending):
                out.extend(self.flush())  # the second write to a document follows the first
            self._pending.append((self.line, item))
            if len(self._pending) >= BATCH:
                out.extend(self.flush())
        return out

    def flush(self) -> list[BulkResult]:
        """Write what is pending; return its results."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        try:
            results = self._write(pending)
        except _ITEM_ERRORS as exc:
            if len(pending) == 1:
                results = [_failed(pending[0], exc)]
            else:  # one transaction per item, so the bad one fails alone
                results = [self._write_one(one) for one in pending]
        for r in results:
            self.counts[r.status] = self.counts.get(r.status, 0) + 1
        return results

    def finish(self) -> list[BulkResult]:
        """Write what is pending (the end of the input); return its results.

        Then, on PostgreSQL, tables that have no planner statistics yet or outgrew them
        are analyzed (:func:`~daytwo.knowledge.ingest.analyze_grown_tables`): the write
        path looks only every thousand chunks, and a search straight after a smaller
        load into a new collection would be planned without any.
        """
        results = self.flush()
        if self.counts["stored"] or self.counts["erased"]:
            analyze_grown_tables(self.kb)
        return results

    def _write_one(self, one: tuple[int, DocWrite | str]) -> BulkResult:
        try:
            return self._write([one])[0]
        except _ITEM_ERRORS as exc:
            return _failed(one, exc)

    def summary(self) -> dict[str, Any]:
        """Counts of the results so far, and the lines read."""
        return {"lines": self.line, **self.counts}

    def _parse(self, raw: bytes | None) -> DocWrite | str:
        if raw is None:
            raise InputError(
                f"line is longer than {MAX_LINE_BYTES} bytes", hint="split the document"
            )
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"not JSON: {exc}", hint="one JSON object per line") from None
        if not isinstance(obj, dict):
            raise InputError("a line must be a JSON object", hint='{"doc_id": ..., "text": ...}')
        unknown = sorted(set(obj) - _FIELDS)
        if unknown:
            raise InputError(
                f"unknown field(s) {', '.join(unknown)}",
                hint=f"use {', '.join(sorted(_FIELDS))}",
            )
        op = obj.get("op", "upsert")
        if op == "delete":
            doc_id = obj.get("doc_id")
            if not isinstance(doc_id, str) or not 1 <= len(doc_id) <= 512:
                raise InputError("doc_id must be a string of 1 to 512 characters", hint="fix it")
            check_text("doc_id", doc_id)
            return doc_id
        if op != "upsert":
            raise InputError(f"unknown op {op!r}", hint="use upsert or delete")
        return parse_document(obj)

    def _write(self, pending: list[tuple[int, DocWrite | str]]) -> list[BulkResult]:
        upserts = [p for _, p in pending if isinstance(p, DocWrite)]
        deletes = [p for _, p in pending if isinstance(p, str)]
        existing = self.kb.existing_documents(self.collection, deletes) if deletes else set()
        apply_writes(self.kb, self.collection, upserts=upserts, deletes=deletes)
        out = []
        for line, item in pending:
            if isinstance(item, DocWrite):
                out.append(BulkResult(line, "upsert", item.doc_id, "stored"))
            else:
                status = "erased" if item in existing else "not_found"
                out.append(BulkResult(line, "delete", item, status))
        return out

    def _error(self, line: int, exc: Exception) -> BulkResult:
        self.counts["error"] += 1
        return BulkResult(line, "?", None, "error", _message(exc))


def _doc_id(item: DocWrite | str) -> str:
    return item.doc_id if isinstance(item, DocWrite) else item


def _message(exc: Exception) -> str:
    hint = getattr(exc, "hint", None)
    return f"{exc} ({hint})" if hint else str(exc)


def _failed(one: tuple[int, DocWrite | str], exc: Exception) -> BulkResult:
    line, item = one
    op = "upsert" if isinstance(item, DocWrite) else "delete"
    if isinstance(exc, sa.exc.DBAPIError):  # the driver's words, not its traceback
        exc = InputError(str(exc.orig).splitlines()[0], hint="fix the item and send it again")
    return BulkResult(line, op, _doc_id(item), "error", _message(exc))
