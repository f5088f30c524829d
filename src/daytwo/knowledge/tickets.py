"""Tickets: JSONL and CSV exports of Zendesk, Jira and GitHub issues.

The shape is detected from the first record's keys or the CSV header (or named:
``--format zendesk|jira|github``):

- **Zendesk** (the Tickets API, comments side-loaded): ``id``, ``subject``,
  ``description``, ``status``, ``priority``, ``requester``/``requester_id``,
  ``assignee``/``assignee_id``, ``tags``, ``comments: [{author_id, body, public,
  created_at}]``. CSV: ``Id``, ``Subject``, ``Requester``, ``Assignee``, ``Status``, ...
- **Jira** (the REST issue): ``key``, ``fields: {summary, description, status.name,
  assignee, priority.name, labels, reporter, comment.comments: [{author, body, created,
  jsdPublic, visibility}]}``. CSV: ``Issue key``, ``Summary``, repeated ``Labels`` and
  ``Comment`` columns (``date;author;body``).
- **GitHub** issues (REST or ``gh issue list --json``): ``number``, ``title``, ``body``,
  ``state``, ``user``/``author``, ``assignee(s)``, ``labels``, ``comments: [...]``.

A ticket is one document ``<system>:<key>``: the description, then its public comments
in order; status, assignee, priority, labels, requester as metadata (the requester also
as ``data_subject``, so ``kb erase --subject <requester>`` removes their tickets). Its
internal comments (Zendesk ``public: false``, Jira ``jsdPublic: false`` or a
``visibility`` restriction) are a second document ``<system>:<key>/internal`` whose ACL
is the agents' (``group:agents`` by default): a customer searching never sees them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daytwo.knowledge.source_types import Skipped, SourceDocument

__all__ = [
    "INTERNAL_ACL",
    "TICKET_FORMATS",
    "Comment",
    "Ticket",
    "detect_csv",
    "detect_record",
    "read_ticket_csv",
    "read_ticket_jsonl",
    "ticket_documents",
]

TICKET_FORMATS = ("zendesk", "jira", "github")
INTERNAL_ACL = ("group:agents",)
_NAMES = {"zendesk": "Zendesk", "jira": "Jira", "github": "GitHub issues"}


@dataclass
class Comment:
    """One comment of a ticket."""

    author: str
    body: str
    created: str = ""
    public: bool = True


@dataclass
class Ticket:
    """A ticket in the shape common to the three systems."""

    system: str
    key: str
    title: str
    description: str
    status: str = ""
    assignee: str = ""
    priority: str = ""
    requester: str = ""
    labels: list[str] = field(default_factory=list)
    created: str = ""
    updated: str = ""
    url: str = ""
    comments: list[Comment] = field(default_factory=list)


def _person(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("email", "emailAddress", "login", "name", "displayName", "id"):
            if value.get(key) not in (None, ""):
                return str(value[key])
        return ""
    return "" if value is None else str(value)


def _name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("value") or "")
    return "" if value is None else str(value)


def _labels(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    if isinstance(value, list):
        return [_name(v) for v in value if _name(v)]
    return []


def detect_record(record: Any) -> str | None:
    """The ticket system whose export ``record`` looks like, or None."""
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("fields"), dict) and "key" in record:
        return "jira"
    if "subject" in record and ({"requester_id", "requester", "via"} & record.keys()):
        return "zendesk"
    if "number" in record and "title" in record and ({"state", "html_url"} & record.keys()):
        return "github"
    return None


def detect_csv(header: Sequence[str]) -> str | None:
    """The ticket system whose CSV export has this header, or None."""
    cols = {h.strip().lower() for h in header}
    if {"issue key", "summary"} <= cols:
        return "jira"
    if {"id", "subject", "requester"} <= cols:
        return "zendesk"
    if {"number", "title", "state"} <= cols:
        return "github"
    return None


def _zendesk(rec: dict[str, Any]) -> Ticket:
    comments = []
    for c in rec.get("comments") or []:
        if isinstance(c, dict) and str(c.get("body") or c.get("plain_body") or "").strip():
            comments.append(
                Comment(
                    _person(c.get("author") or c.get("author_id")),
                    str(c.get("plain_body") or c.get("body")),
                    str(c.get("created_at") or ""),
                    c.get("public", True) is not False,
                )
            )
    return Ticket(
        "zendesk",
        str(rec["id"]),
        str(rec.get("subject") or ""),
        str(rec.get("description") or ""),
        str(rec.get("status") or ""),
        _person(rec.get("assignee") or rec.get("assignee_id")),
        str(rec.get("priority") or ""),
        _person(rec.get("requester") or rec.get("requester_id")),
        _labels(rec.get("tags")),
        str(rec.get("created_at") or ""),
        str(rec.get("updated_at") or ""),
        str(rec.get("url") or ""),
        comments,
    )


def _adf_text(value: Any) -> str:
    """Text of a Jira field: a string, or Atlassian Document Format (API v3)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text":
            return str(value.get("text") or "")
        inner = "".join(_adf_text(v) for v in value.get("content") or [])
        return inner + ("\n" if value.get("type") in {"paragraph", "heading"} else "")
    return ""


def _jira(rec: dict[str, Any]) -> Ticket:
    f = rec["fields"]
    comments = []
    block = f.get("comment")
    items = block.get("comments") if isinstance(block, dict) else block
    for c in items or []:
        if not isinstance(c, dict):
            continue
        body = _adf_text(c.get("body")).strip()
        if body:
            public = c.get("jsdPublic", True) is not False and not c.get("visibility")
            comments.append(
                Comment(_person(c.get("author")), body, str(c.get("created") or ""), public)
            )
    return Ticket(
        "jira",
        str(rec["key"]),
        str(f.get("summary") or ""),
        _adf_text(f.get("description")).strip(),
        _name(f.get("status")),
        _person(f.get("assignee")),
        _name(f.get("priority")),
        _person(f.get("reporter")),
        _labels(f.get("labels")),
        str(f.get("created") or ""),
        str(f.get("updated") or ""),
        str(rec.get("self") or ""),
        comments,
    )


def _github(rec: dict[str, Any]) -> Ticket:
    assignees = rec.get("assignees") or ([rec["assignee"]] if rec.get("assignee") else [])
    labels = _labels(rec.get("labels"))
    priority = next(
        (lab.split(":", 1)[1].strip() for lab in labels if lab.lower().startswith("priority:")),
        "",
    )
    comments = []
    raw_comments = rec.get("comments")
    for c in raw_comments if isinstance(raw_comments, list) else []:
        if isinstance(c, dict) and str(c.get("body") or "").strip():
            comments.append(
                Comment(
                    _person(c.get("user") or c.get("author")),
                    str(c["body"]),
                    str(c.get("created_at") or c.get("createdAt") or ""),
                )
            )
    url = str(rec.get("html_url") or rec.get("url") or "")
    key = str(rec["number"])
    repo = re.search(r"github\.com/(?:repos/)?([^/\s]+/[^/\s]+)/issues/\d+", url)
    if repo is not None:
        key = f"{repo.group(1)}/{key}"
    return Ticket(
        "github",
        key,
        str(rec.get("title") or ""),
        str(rec.get("body") or ""),
        str(rec.get("state") or "").lower(),
        ", ".join(_person(a) for a in assignees if _person(a)),
        priority,
        _person(rec.get("user") or rec.get("author")),
        labels,
        str(rec.get("created_at") or rec.get("createdAt") or ""),
        str(rec.get("updated_at") or rec.get("updatedAt") or ""),
        url,
        comments,
    )


_PARSERS = {"zendesk": _zendesk, "jira": _jira, "github": _github}


def _ticket(record: Any, system: str) -> Ticket:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    try:
        ticket = _PARSERS[system](record)
    except KeyError as exc:
        raise ValueError(f"not a {_NAMES[system]} record (no {exc.args[0]!r} field)") from exc
    if not ticket.key.strip() or ticket.key == "None":
        raise ValueError("the ticket has no id")
    return ticket


def _fmt(comment: Comment) -> str:
    head = comment.author or "(unknown)"
    if comment.created:
        head += f" ({comment.created})"
    return f"{head}:\n{comment.body.strip()}"


def ticket_documents(
    ticket: Ticket, where: str, internal_acl: Sequence[str] = INTERNAL_ACL
) -> list[SourceDocument]:
    """The ticket's public document and, with internal comments, its internal one."""
    doc_id = f"{ticket.system}:{ticket.key}"
    description = ticket.description.strip()
    public = [c for c in ticket.comments if c.public and c.body.strip() != description]
    internal = [c for c in ticket.comments if not c.public]
    metadata: dict[str, Any] = {
        "type": "ticket",
        "ticket_system": ticket.system,
        "ticket": ticket.key,
        "thread": doc_id,
        "path": where,
        "status": ticket.status,
        "assignee": ticket.assignee,
        "priority": ticket.priority,
        "labels": ", ".join(ticket.labels),
        "requester": ticket.requester,
        "created": ticket.created,
        "updated": ticket.updated,
        "url": ticket.url,
        "comments": len(public),
    }
    if ticket.requester:
        metadata["data_subject"] = ticket.requester
    metadata = {k: v for k, v in metadata.items() if v != ""}
    text = "\n\n".join([description, *(_fmt(c) for c in public)]).strip()
    docs = [SourceDocument(doc_id, text, ticket.title, metadata)]
    if internal:
        docs.append(
            SourceDocument(
                f"{doc_id}/internal",
                "\n\n".join(_fmt(c) for c in internal),
                f"{ticket.title} (internal notes)",
                {**metadata, "comments": len(internal), "visibility": "internal"},
                tuple(internal_acl),
            )
        )
    return docs


def _emit(ticket: Ticket, where: str) -> Iterator[SourceDocument | Skipped]:
    docs = ticket_documents(ticket, where)
    if not docs[0].text and not docs[0].title:
        yield Skipped(where, "the ticket has no text (no description, comment or title)")
        return
    yield from docs


def read_ticket_jsonl(
    path: Path, label: str, system: str | None
) -> Iterator[SourceDocument | Skipped]:
    """Tickets of a JSONL export (``system`` None: detected from the first record)."""
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{label}:{number}"
                try:
                    record = json.loads(line)
                    kind = system or detect_record(record)
                    if kind is None:
                        raise ValueError("not a Zendesk, Jira or GitHub issue record")
                    yield from _emit(_ticket(record, kind), where)
                except (ValueError, TypeError) as exc:
                    yield Skipped(where, f"bad ticket: {exc}")
        except UnicodeDecodeError as exc:
            yield Skipped(label, f"not UTF-8 text (byte {exc.start})")


def _jira_csv_comment(value: str) -> Comment:
    parts = value.split(";", 2)
    if len(parts) == 3 and any(ch.isdigit() for ch in parts[0]):
        return Comment(parts[1].strip(), parts[2].strip(), parts[0].strip())
    return Comment("", value.strip())


def _csv_ticket(system: str, header: list[str], row: list[str]) -> Ticket:
    many: dict[str, list[str]] = {}
    for name, value in zip(header, row, strict=False):
        many.setdefault(name.strip().lower(), []).append(value)

    def one(*names: str) -> str:
        for name in names:
            for value in many.get(name, []):
                if value.strip():
                    return value.strip()
        return ""

    if system == "jira":
        key = one("issue key")
        comments = [_jira_csv_comment(v) for v in many.get("comment", []) if v.strip()]
        labels = [v.strip() for v in many.get("labels", []) if v.strip()]
        title, description = one("summary"), one("description")
        requester = one("reporter")
    elif system == "zendesk":
        key = one("id")
        comments, labels = [], _labels(one("tags"))
        title, description = one("subject"), one("description")
        requester = one("requester", "requester email")
    else:
        key = one("number")
        comments, labels = [], _labels(one("labels"))
        title, description = one("title"), one("body")
        requester = one("author", "user")
    if not key:
        raise ValueError("the ticket has no id")
    return Ticket(
        system,
        key,
        title,
        description,
        one("status", "state"),
        one("assignee", "assignees"),
        one("priority"),
        requester,
        labels,
        one("created", "created at", "created_at", "createdat"),
        one("updated", "updated at", "updated_at", "updatedat"),
        one("url", "html_url"),
        comments,
    )


def read_ticket_csv(
    text: str, label: str, system: str | None
) -> Iterator[SourceDocument | Skipped]:
    """Tickets of a CSV export (``system`` None: detected from the header)."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    kind = detect_csv(header)
    if system is not None and kind != system:
        yield Skipped(
            label,
            f"not a {_NAMES[system]} CSV export (its header is "
            f"{', '.join(header[:6]) or 'empty'}{', ...' if len(header) > 6 else ''})",
        )
        return
    if kind is None:
        yield Skipped(label, "not a Zendesk, Jira or GitHub issues CSV export")
        return
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{label}:{number}"
        try:
            yield from _emit(_csv_ticket(kind, header, row), where)
        except ValueError as exc:
            yield Skipped(where, f"bad ticket: {exc}")
