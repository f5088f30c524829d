"""Sources: folders of files (txt, md, html, pdf, e-mail, images, audio), JSONL/CSV, SQL.

A source yields :class:`SourceDocument` objects and :class:`Skipped` records (a file
or row that could not be read, with the reason); it never stops at the first bad
file. Every source has a ``key`` so that incremental sync can delete the documents
that vanished from it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.source_types import Skipped, Source, SourceDocument
from daytwo.knowledge.text_files import FILE_TYPES, parse_bytes, parse_file, read_text

__all__ = [
    "FILE_TYPES",
    "RECORD_TYPES",
    "FileSource",
    "Skipped",
    "Source",
    "SourceDocument",
    "SqlSource",
    "open_source",
]

RECORD_TYPES = {".jsonl", ".csv"}
_ID_KEYS = ("_id", "id", "doc_id")
_TEXT_KEYS = ("text", "content", "body")


def _record_doc(record: Any, where: str) -> SourceDocument:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    doc_id = next((record[k] for k in _ID_KEYS if record.get(k) not in (None, "")), None)
    if doc_id is None:
        raise ValueError(f"no id field (one of {', '.join(_ID_KEYS)})")
    text = next((record[k] for k in _TEXT_KEYS if isinstance(record.get(k), str)), None)
    if text is None:
        raise ValueError(f"no text field (one of {', '.join(_TEXT_KEYS)})")
    meta = record.get("metadata")
    metadata = dict(meta) if isinstance(meta, dict) else {}
    for key, value in record.items():
        if key not in (*_ID_KEYS, *_TEXT_KEYS, "title", "metadata") and not isinstance(
            value, (dict, list)
        ):
            metadata.setdefault(key, value)
    return SourceDocument(str(doc_id), text, str(record.get("title") or ""), metadata)


def _read_jsonl(path: Path, label: str) -> Iterator[SourceDocument | Skipped]:
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield _record_doc(json.loads(line), f"{label}:{number}")
                except (ValueError, TypeError) as exc:
                    yield Skipped(f"{label}:{number}", f"bad record: {exc}")
        except UnicodeDecodeError as exc:
            yield Skipped(label, f"not UTF-8 text (byte {exc.start})")


def _read_csv(path: Path, label: str) -> Iterator[SourceDocument | Skipped]:
    try:
        text = read_text(path)
    except ValueError as exc:
        yield Skipped(label, str(exc))
        return
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        try:
            yield _record_doc(dict(row), f"{label}:{number}")
        except ValueError as exc:
            yield Skipped(f"{label}:{number}", f"bad row: {exc}")


def load_attachment(name: str, data: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """(title, text, metadata) of an attached file by the file loaders; None: none reads it."""
    from daytwo.knowledge import media

    ext = Path(name).suffix.lower()
    if ext in FILE_TYPES:
        title, text = parse_bytes(name, data)
        return title, text, {"type": ext.lstrip(".")}
    if ext in media.MEDIA_TYPES:
        kind = "image" if ext in media.IMAGE_TYPES else "audio"
        if not media.available(kind):
            raise LookupError(f"{kind} attachments need the multimodal extra: {media.EXTRA_HINT}")
        return media.load_media_attachment(name, data)
    return None


class FileSource(Source):
    """A file or a folder (recursive). BEIR folders: ``corpus.jsonl`` is the corpus.

    E-mail (``.eml``, ``.mbox``, Maildir folders) is read as threads across the whole
    source (:mod:`daytwo.knowledge.mail`); JSONL/CSV ticket exports as tickets
    (:mod:`daytwo.knowledge.tickets`); images and audio by OCR and speech recognition
    (:mod:`daytwo.knowledge.media`, the ``multimodal`` extra).
    """

    def __init__(self, path: Path, *, ticket_format: str | None = None) -> None:
        from daytwo.knowledge.tickets import TICKET_FORMATS

        self.path = path.expanduser().resolve()
        if not self.path.exists():
            raise NotFoundError(f"{path} does not exist", hint="give an existing file or folder")
        if ticket_format == "auto":
            ticket_format = None
        if ticket_format is not None and ticket_format not in TICKET_FORMATS:
            raise InputError(
                f"unknown ticket export format {ticket_format!r}",
                hint=f"use one of auto, {', '.join(TICKET_FORMATS)}",
            )
        self.ticket_format = ticket_format
        self.key = f"file:{self.path.as_posix()}"

    def _records(self, file: Path, rel: str) -> Iterator[SourceDocument | Skipped]:
        """A JSONL or CSV file: a ticket export (named or detected), else records."""
        from daytwo.knowledge import tickets

        if file.suffix.lower() == ".jsonl":
            system = self.ticket_format
            if system is None:
                with file.open("rb") as fh:
                    first = next((line for line in fh if line.strip()), b"")
                try:
                    system = tickets.detect_record(json.loads(first))
                except ValueError:
                    system = None
            if system is not None:
                yield from tickets.read_ticket_jsonl(file, rel, system)
            else:
                yield from _read_jsonl(file, rel)
            return
        try:
            text = read_text(file)
        except ValueError as exc:
            yield Skipped(rel, str(exc))
            return
        header = next(csv.reader(io.StringIO(text)), [])
        if self.ticket_format is not None or tickets.detect_csv(header) is not None:
            yield from tickets.read_ticket_csv(text, rel, self.ticket_format)
        else:
            yield from _read_csv(file, rel)

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        beir = self.path / "corpus.jsonl"
        if beir.is_file():
            return [beir]
        return sorted(p for p in self.path.rglob("*") if p.is_file() or p.is_symlink())

    def read(self) -> Iterator[SourceDocument | Skipped]:
        from daytwo.knowledge import mail, media

        if self.path.is_file() and self.path.suffix.lower() in media.MEDIA_TYPES:
            # The one file asked for: say what to install rather than skip it.
            media.require("image" if self.path.suffix.lower() in media.IMAGE_TYPES else "audio")
        root = self.path if self.path.is_dir() else self.path.parent
        files = self._files()
        if self.path.is_dir() and files == [self.path / "corpus.jsonl"]:
            # A BEIR folder: corpus.jsonl is the corpus; say so for every other file
            # rather than ignoring it silently.
            for other in sorted(p for p in self.path.rglob("*") if p.is_file()):
                rel = other.relative_to(root).as_posix()
                if other != files[0] and not any(part.startswith(".") for part in Path(rel).parts):
                    yield Skipped(
                        rel,
                        "the folder holds corpus.jsonl (a BEIR data set): only it is read; "
                        "ingest this file on its own, or move corpus.jsonl out of the folder",
                    )
        maildirs: list[Path] = []
        if self.path.is_dir():
            maildirs = [
                d
                for d in [self.path, *sorted(p for p in self.path.rglob("*") if p.is_dir())]
                if mail.is_maildir(d)
                and not d.is_symlink()
                and not any(part.startswith(".") for part in d.relative_to(self.path).parts)
            ]
        in_maildir: set[Path] = set()
        messages: list[mail.MailMessage] = []
        for maildir in maildirs:
            for file in mail.maildir_files(maildir):
                in_maildir.add(file)
        for file in files:
            rel = file.relative_to(root).as_posix()
            ext = file.suffix.lower()
            if file in in_maildir or any(file.is_relative_to(d) for d in maildirs):
                continue  # read below, as the messages of its Maildir
            if any(part.startswith(".") for part in Path(rel).parts):
                continue
            if self.path.is_dir() and not file.resolve().is_relative_to(root):
                # A symlink (of the file or of a folder above it) leading out of the
                # folder: never read what the folder's owner did not put in it.
                yield Skipped(rel, "a symlink that leads outside the folder (not followed)")
                continue
            if ext in mail.MAIL_TYPES:
                for item in mail.read_mail_file(file, rel):
                    if isinstance(item, Skipped):
                        yield item
                    else:
                        messages.append(item)
                continue
            try:
                if ext in RECORD_TYPES:
                    yield from self._records(file, rel)
                    continue
                if ext in media.MEDIA_TYPES:
                    yield from media.media_documents(file, rel, self.reuse, self.read_progress)
                    continue
                if ext not in FILE_TYPES:
                    yield Skipped(rel, f"unsupported file type {ext or '(none)'}")
                    continue
                title, text = parse_file(file)
            except OSError as exc:
                yield Skipped(rel, f"unreadable: {exc.strerror or exc}")
                continue
            except Exception as exc:  # a corrupt file of any kind is skipped with its reason
                yield Skipped(rel, f"corrupt {ext.lstrip('.')} file: {exc}")
                continue
            if not text.strip() and ext == ".pdf":
                try:
                    yield from media.scanned_pdf_documents(file, rel, title, self.reuse)
                except Exception as exc:
                    yield Skipped(rel, f"corrupt pdf file (OCR of its pages): {exc}")
                continue
            if not text.strip():
                yield Skipped(rel, "no text in the file")
                continue
            yield SourceDocument(rel, text, title, {"path": rel, "type": ext.lstrip(".")})
        for file in sorted(in_maildir):
            if not file.resolve().is_relative_to(root):
                yield Skipped(
                    file.relative_to(root).as_posix(),
                    "a symlink that leads outside the folder (not followed)",
                )
                continue
            for item in mail.read_mail_file(file, file.relative_to(root).as_posix()):
                if isinstance(item, Skipped):
                    yield item
                else:
                    messages.append(item)
        if messages:
            yield from mail.thread_documents(messages, load_attachment)


class SqlSource(Source):
    """Rows of a SQL table or query through any SQLAlchemy URL."""

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        query: str | None = None,
        id_column: str = "id",
        text_column: str = "text",
        title_column: str | None = "title",
    ) -> None:
        if (table is None) == (query is None):
            raise InputError(
                f"a SQL source needs a table or a query: {url}",
                hint="pass --table NAME or --query 'SELECT id, title, text FROM ...'",
            )
        self.url = url
        self.table = table
        self.query = query
        self.id_column = id_column
        self.text_column = text_column
        self.title_column = title_column
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except Exception as exc:
            raise InputError(
                f"{url!r} is not a SQLAlchemy URL", hint="e.g. sqlite:///docs.db"
            ) from exc
        self.key = f"sql:{shown}:{table or query}"

    def read(self) -> Iterator[SourceDocument | Skipped]:
        import sqlalchemy as sa

        from daytwo.store.engine import make_engine

        engine = make_engine(self.url)
        try:
            if self.table is not None:
                quoted = engine.dialect.identifier_preparer.quote(self.table)
                stmt = sa.text(f"SELECT * FROM {quoted}")
            else:
                stmt = sa.text(str(self.query))
            try:
                with engine.connect() as conn:
                    rows = [dict(r._mapping) for r in conn.execute(stmt)]
            except sa.exc.SQLAlchemyError as exc:
                raise InputError(
                    f"cannot read {self.table or 'the query'} from {self.key}: "
                    f"{str(exc).splitlines()[0]}",
                    hint="check the table name, query and column names",
                ) from exc
        finally:
            engine.dispose()
        for number, row in enumerate(rows, start=1):
            doc_id = row.get(self.id_column)
            text = row.get(self.text_column)
            if doc_id is None or not isinstance(text, str):
                yield Skipped(
                    f"row {number}",
                    f"missing {self.id_column!r} or text column {self.text_column!r}",
                )
                continue
            title = str(row.get(self.title_column) or "") if self.title_column else ""
            meta = {
                k: v
                for k, v in row.items()
                if k not in {self.id_column, self.text_column, self.title_column}
                and isinstance(v, (str, int, float, bool))
            }
            yield SourceDocument(str(doc_id), text, title, meta)


def open_source(target: str, *, ticket_format: str | None = None, **sql_options: Any) -> Source:
    """A source for a path or a SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``).

    ``ticket_format`` (zendesk, jira, github; default: detected) reads the JSONL and CSV
    files of a path as that ticket system's export.
    """
    if re.match(r"^[a-z][a-z0-9+]*://", target):
        if ticket_format not in (None, "auto"):
            raise InputError(
                "--format names a ticket export format: it applies to files, not SQL sources",
                hint="drop --format, or give the path of the export file",
            )
        return SqlSource(target, **sql_options)
    return FileSource(Path(target), ticket_format=ticket_format)
