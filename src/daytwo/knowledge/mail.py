"""E-mail: ``.eml`` files, ``.mbox`` files and Maildir folders, read as threads.

All the messages of one source are threaded together, across files: a message joins the
thread of every id it names (its ``Message-ID``, ``In-Reply-To`` and ``References``).
A thread's messages are kept in date order, each with its sender and date and with the
quoted text of earlier messages removed (lines starting with ``>``, the "On … wrote:"
line above them, an Outlook "-----Original Message-----" tail), so each message's words
are indexed once. A person sees the messages they were sent, never more: the messages
of a thread are grouped by audience (sender plus recipients), and each group is one
document readable by exactly that audience. Someone copied in later therefore does not
read the earlier messages (nor their attachments), as in their own mailbox. Most
threads have one audience and so one document, ``mail:<root message id>`` (the first id
of the oldest message's ``References``, else its own id); the group holding the
thread's first message keeps that id, another audience's group is
``mail:<root>#<hash of its first message id>``; both are stable across syncs.

Metadata: sender, recipients, participants (the audience), the subject line (as
``mail_subject``: the key ``subject`` names a GDPR data subject, see
:mod:`daytwo.knowledge.erase`), the first and last date, the message count, and
``thread`` (the thread's id, carried by all its documents and attachments, so
``kb erase --where thread=<id>`` removes a thread and everything derived from it).
The default ACL is the audience: ``user:<address>`` for the sender and every recipient
(addresses in lower case, as a principal searching names itself).

Attachments that a file loader reads (text, Markdown, HTML, PDF, and the images and
audio of :mod:`daytwo.knowledge.media` when its extra is installed) become child
documents ``<thread id>/<message number>/<file name>`` readable by the audience of the
message that carried them; others are reported as skipped, with the reason.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from daytwo.knowledge.source_types import Skipped, SourceDocument
from daytwo.knowledge.text_files import html_text

__all__ = [
    "MAIL_TYPES",
    "MailMessage",
    "is_maildir",
    "maildir_files",
    "parse_message",
    "read_mail_file",
    "strip_quotes",
    "thread_documents",
]

MAIL_TYPES = {".eml", ".mbox"}
_ADDRESS = re.compile(r"^[^@\s<>,;:\"]{1,128}@[^@\s<>,;:\"]{1,200}$")
_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_ON_WROTE = re.compile(r"^\s*On\b.*\bwrote:\s*$")
_ON_START = re.compile(r"^\s*On\s.*\d")
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.I)
_OUTLOOK_FROM = re.compile(r"^\s*From:\s.+$")
_OUTLOOK_SENT = re.compile(r"^\s*(Sent|Date):\s.+$")

AttachmentLoader = Callable[[str, bytes], "tuple[str, str, dict[str, Any]] | None"]
"""(file name, bytes) → (title, text, extra metadata), None for a type no loader reads;
ValueError (or any error) with the reason when the content is corrupt."""


@dataclass
class MailMessage:
    """One parsed message."""

    origin: str  # where it came from: a path, ``<mbox path>:<n>``
    message_id: str
    parents: list[str]  # References then In-Reply-To, oldest first
    subject: str
    sender: str
    sender_name: str
    recipients: list[str]
    date: datetime | None
    body: str
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, type, data


def _ids(value: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value or "")


def _addresses(msg: EmailMessage, *names: str) -> list[tuple[str, str]]:
    values = [str(v) for name in names for v in (msg.get_all(name) or [])]
    out = []
    for display, addr in email.utils.getaddresses(values):
        addr = addr.strip().lower()
        if _ADDRESS.match(addr):
            out.append((display.strip(), addr))
    return out


def _date(msg: EmailMessage) -> datetime | None:
    raw = msg.get("Date")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def strip_quotes(body: str) -> str:
    """The text a message adds: quoted earlier messages and their attribution removed."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _ORIGINAL.match(line) and any(k.strip() for k in kept):
            break  # top-posted reply: everything below is the earlier message
        if (
            _OUTLOOK_FROM.match(line)
            and any(_OUTLOOK_SENT.match(n) for n in lines[i + 1 : i + 4])
            and any(k.strip() for k in kept)
        ):
            break  # Outlook's header block of the message replied to
        if line.lstrip().startswith(">"):
            i += 1
            continue
        if _ON_WROTE.match(line):
            i += 1
            continue
        if (
            _ON_START.match(line)
            and i + 1 < len(lines)
            and lines[i + 1].rstrip().endswith("wrote:")
            and len(line) + len(lines[i + 1]) < 300
        ):
            i += 2  # the attribution wrapped over two lines
            continue
        kept.append(line.rstrip())
        i += 1
    text = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    if part.get_content_subtype() == "html":
        content = html_text(str(content))[1]
    return strip_quotes(str(content))


def parse_message(data: bytes, origin: str) -> MailMessage:
    """A message from its bytes; ValueError with the reason when it is not an e-mail."""
    if b"\x00" in data[:4096]:
        raise ValueError("binary content, not an e-mail message")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    if not any(msg.get(h) is not None for h in ("From", "Message-ID", "Date", "Subject")):
        raise ValueError("not an e-mail message (no From, Message-ID, Date or Subject header)")
    own = _ids(str(msg.get("Message-ID") or ""))
    message_id = own[0] if own else f"sha256-{hashlib.sha256(data).hexdigest()[:24]}@daytwo"
    parents = _ids(str(msg.get("References") or ""))
    for reply_to in _ids(str(msg.get("In-Reply-To") or "")):
        if reply_to not in parents:
            parents.append(reply_to)
    parents = [p for p in parents if p != message_id]
    senders = _addresses(msg, "From")
    attachments = []
    for part in msg.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_filename() or ""
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            attachments.append((Path(name).name or "attachment", part.get_content_type(), payload))
    return MailMessage(
        origin=origin,
        message_id=message_id,
        parents=parents,
        subject=str(msg.get("Subject") or "").strip(),
        sender=senders[0][1] if senders else "",
        sender_name=senders[0][0] if senders else "",
        recipients=[a for _n, a in _addresses(msg, "To", "Cc")],
        date=_date(msg),
        body=_body(msg),
        attachments=attachments,
    )


def _mbox_messages(data: bytes) -> list[bytes]:
    if not data.startswith(b"From "):
        raise ValueError("not an mbox file (it does not start with a 'From ' line)")
    parts = re.split(rb"(?:\r?\n|^)From [^\r\n]*\r?\n", data)
    out = []
    for part in parts:
        if part.strip():
            # mboxrd: ">From " at a line start was escaped when the message was stored.
            out.append(re.sub(rb"(?m)^>(>*From )", rb"\1", part))
    return out


def read_mail_file(path: Path, label: str) -> Iterator[MailMessage | Skipped]:
    """The messages of an ``.eml`` file, an ``.mbox`` file or a Maildir message file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Skipped(label, f"unreadable: {exc.strerror or exc}")
        return
    if path.suffix.lower() == ".mbox":
        try:
            raw_messages = _mbox_messages(data)
        except ValueError as exc:
            yield Skipped(label, f"corrupt mbox file: {exc}")
            return
        for number, raw in enumerate(raw_messages, start=1):
            where = f"{label}:{number}"
            try:
                yield parse_message(raw, where)
            except Exception as exc:  # one bad message does not stop the mailbox
                yield Skipped(where, f"corrupt message: {exc}")
        return
    try:
        yield parse_message(data, label)
    except Exception as exc:
        yield Skipped(label, f"corrupt e-mail file: {exc}")


def is_maildir(path: Path) -> bool:
    """A Maildir folder: it holds ``cur`` and ``new`` folders."""
    return (path / "cur").is_dir() and (path / "new").is_dir()


def maildir_files(path: Path) -> list[Path]:
    """The message files of a Maildir and of its Maildir++ sub-folders (``.Sent``, ...)."""
    subs = [p for p in path.iterdir() if p.is_dir() and p.name.startswith(".") and is_maildir(p)]
    folders = [path, *sorted(subs)]
    return sorted(
        f
        for folder in folders
        for sub in ("cur", "new")
        for f in (folder / sub).iterdir()
        if f.is_file() and not f.name.startswith(".")
    )


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _audience(message: MailMessage) -> tuple[str, ...]:
    """Who received ``message``: its sender and recipients, sorted."""
    return tuple(sorted({a for a in [message.sender, *message.recipients] if a}))


def thread_documents(
    messages: list[MailMessage], load_attachment: AttachmentLoader
) -> Iterator[SourceDocument | Skipped]:
    """A thread's documents (one per audience) and one per readable attachment; see the
    module docstring."""
    unique: dict[str, MailMessage] = {}
    for message in messages:
        unique.setdefault(message.message_id, message)  # the same message in two mailboxes
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for message in unique.values():
        for other in message.parents:
            a, b = find(message.message_id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    threads: dict[str, list[MailMessage]] = {}
    for message in unique.values():
        threads.setdefault(find(message.message_id), []).append(message)
    floor = datetime.min.replace(tzinfo=UTC)
    for members in threads.values():
        members.sort(key=lambda m: (m.date or floor, m.origin))
        first = members[0]
        root = first.parents[0] if first.parents else first.message_id
        if len(root) > 300:  # ids are free text; keep the document id within bounds
            root = f"sha256-{hashlib.sha256(root.encode()).hexdigest()}"
        thread_id = f"mail:{root}"
        subject = _PREFIX.sub("", first.subject).strip() or first.subject
        audiences: dict[tuple[str, ...], list[MailMessage]] = {}
        for m in members:
            audiences.setdefault(_audience(m), []).append(m)
        for audience, group in audiences.items():
            # The group holding the thread's first message keeps the thread's id; another
            # audience's group is named after its own first message (stable across syncs).
            doc_id = (
                thread_id
                if group[0] is first
                else f"{thread_id}#{hashlib.sha256(group[0].message_id.encode()).hexdigest()[:12]}"
            )
            parts = []
            for m in group:
                who = f"{m.sender_name} <{m.sender}>" if m.sender_name else m.sender or "(unknown)"
                parts.append(f"From: {who}\nDate: {_iso(m.date)}\n\n{m.body}".strip())
            recipients = sorted({a for m in group for a in m.recipients})
            metadata: dict[str, Any] = {
                "type": "email",
                "thread": thread_id,
                "path": group[0].origin,
                "sender": group[0].sender,
                "recipients": ", ".join(recipients),
                "participants": ", ".join(audience),
                "mail_subject": subject,
                "date": _iso(group[0].date),
                "last_date": _iso(group[-1].date),
                "messages": len(group),
            }
            acl = tuple(f"user:{a}" for a in audience)
            yield SourceDocument(doc_id, "\n\n".join(parts), subject, metadata, acl)
        for number, m in enumerate(members, start=1):
            seen: set[str] = set()
            for name, content_type, data in m.attachments:
                child = f"{thread_id}/{number}/{name}"
                if child in seen:
                    continue
                seen.add(child)
                try:
                    loaded = load_attachment(name, data)
                except LookupError as exc:  # a loader that needs an extra
                    yield Skipped(child, str(exc))
                    continue
                except Exception as exc:
                    yield Skipped(child, f"corrupt attachment ({content_type}): {exc}")
                    continue
                if loaded is None:
                    yield Skipped(child, f"attachment of type {content_type} has no loader")
                    continue
                title, text, extra = loaded
                if not text.strip():
                    yield Skipped(child, "no text in the attachment")
                    continue
                child_meta = {
                    **extra,
                    "type": extra.get("type", "email-attachment"),
                    "thread": thread_id,
                    "attachment": name,
                    "content_type": content_type,
                    "sender": m.sender,
                    "date": _iso(m.date),
                }
                if "blob_sha256" in extra:  # an image or a recording, kept where it is
                    child_meta["blob_path"] = f"{m.origin}/{name}"
                yield SourceDocument(
                    child,
                    text,
                    title or name,
                    child_meta,
                    tuple(f"user:{a}" for a in _audience(m)),
                )
