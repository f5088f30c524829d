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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from daytwo.exceptions import InputError, NotFoundError

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

FILE_TYPES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}
RECORD_TYPES = {".jsonl", ".csv"}
_ID_KEYS = ("_id", "id", "doc_id")
_TEXT_KEYS = ("text", "content", "body")


@dataclass(frozen=True)
class SourceDocument:
    """A document read from a source."""

    doc_id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    acl: tuple[str, ...] | None = None
    """The document's own readers (the people on an e-mail thread, the agents for an
    internal ticket comment), or None for the ingest's ACL. When set, it replaces the
    ingest's default ``group:everyone``; entries given explicitly (``--acl``) are added."""


@dataclass(frozen=True)
class Skipped:
    """Something a source could not read, and why."""

    item: str
    reason: str


class Source:
    """Base of the sources: ``key`` identifies it, ``read()`` yields documents and skips."""

    key: str = ""
    reuse: Callable[[str, str], list[SourceDocument]] | None = None
    """Set by the ingest: (blob path, SHA-256) → the documents already derived from that
    file in the collection, so images and recordings are not OCR'd/transcribed again."""
    read_progress: Callable[[str, float, float], None] | None = None
    """Set by the ingest: (item, done, total) while a long item is read (a recording's
    seconds transcribed), for a progress bar."""

    def read(self) -> Iterator[SourceDocument | Skipped]:
        """Every document of the source (and every item skipped, with its reason)."""
        raise NotImplementedError


class _HTMLText(HTMLParser):
    _SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "noscript", "template"})
    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(t in self._SKIP for t in self._stack):
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data.strip()
            return
        self.parts.append(data)


def _squash(text: str) -> str:
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_text(path: Path) -> str:
    return _decode_text(path.read_bytes())


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ValueError("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from exc


def _read_pdf(data: bytes) -> tuple[str, str]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise ValueError("encrypted PDF")
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    title = ""
    if reader.metadata is not None and reader.metadata.title:
        title = str(reader.metadata.title)
    return title, text


def parse_file(path: Path) -> tuple[str, str]:
    """(title, text) of one file; ValueError/OSError with the reason when unreadable."""
    return parse_bytes(path.name, path.read_bytes())


def html_text(raw: str) -> tuple[str, str]:
    """(title, text) of an HTML page."""
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return parser.title, _squash("".join(parser.parts))


def parse_bytes(name: str, data: bytes) -> tuple[str, str]:
    """(title, text) of the content of a file called ``name`` (a file, an attachment)."""
    path = Path(name)
    ext = path.suffix.lower()
    stem = path.stem.replace("_", " ")
    if ext == ".pdf":
        title, text = _read_pdf(data)
        return title or stem, _squash(text)
    raw = _decode_text(data)
    if ext in {".html", ".htm"}:
        title, text = html_text(raw)
        return title or stem, text
    if ext in {".md", ".markdown"}:
        match = re.search(r"^#\s+(.+)$", raw, flags=re.MULTILINE)
        return (match.group(1).strip() if match else stem), raw.strip()
    return stem, raw.strip()


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
        text = _read_text(path)
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
            text = _read_text(file)
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
