"""E-mail sources: threads across .eml/.mbox/Maildir, quotes stripped, people as the ACL."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import sqlalchemy as sa

from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.erase import erase
from daytwo.knowledge.mail import strip_quotes
from daytwo.knowledge.sources import FileSource, Skipped, SourceDocument
from daytwo.store.tables.knowledge import KbChunk, KbDocMeta, KbDocument

ROOT = "order-1042@shop.example"


def _mail(
    message_id: str,
    sender: str,
    to: list[str],
    subject: str,
    body: str,
    day: int,
    *,
    reply_to: list[str] = (),  # type: ignore[assignment]
    cc: list[str] = (),  # type: ignore[assignment]
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, day, 9, 30, tzinfo=UTC))
    msg["Message-ID"] = f"<{message_id}>"
    if reply_to:
        msg["In-Reply-To"] = f"<{reply_to[-1]}>"
        msg["References"] = " ".join(f"<{r}>" for r in reply_to)
    msg.set_content(body)
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(msg)


FIRST = _mail(
    ROOT,
    "Carol Customer <carol@customer.example>",
    ["support@shop.example"],
    "Order 1042 arrived damaged",
    "Hello,\n\nmy order 1042 arrived with a cracked teapot lid. Can I get a replacement?\n\nCarol",
    1,
    attachments=[
        ("photo-notes.txt", "text/plain", b"Packing slip says: fragile, handle with care."),
        ("invoice.xlsx", "application/vnd.ms-excel", b"PK\x03\x04 not really a workbook"),
    ],
)
REPLY = _mail(
    "reply-1@shop.example",
    "Sam Support <support@shop.example>",
    ["carol@customer.example"],
    "Re: Order 1042 arrived damaged",
    "Hi Carol,\n\nsorry about the lid! A replacement ships tomorrow by courier.\n\n"
    "On Mon, 1 Nov 2026 at 09:30, Carol Customer <carol@customer.example>\nwrote:\n"
    "> my order 1042 arrived with a cracked teapot lid. Can I get a replacement?\n> Carol\n",
    2,
    reply_to=[ROOT],
    cc=["Dan Dispatch <dispatch@shop.example>"],
)
THANKS = _mail(
    "reply-2@customer.example",
    "carol@customer.example",
    ["support@shop.example"],
    "RE: Re: Order 1042 arrived damaged",
    "Thanks, the courier came already.\n\n-----Original Message-----\nFrom: Sam\n"
    "sorry about the lid! A replacement ships tomorrow by courier.\n",
    3,
    reply_to=[ROOT, "reply-1@shop.example"],
)
OTHER = _mail(
    "newsletter-7@shop.example",
    "news@shop.example",
    ["erin@else.example"],
    "November newsletter",
    "New glazes in stock: celadon and tenmoku.",
    4,
)


def _mailbox(root: Path) -> Path:
    """A folder: one .eml, one .mbox (two messages), one Maildir (one message)."""
    root.mkdir(parents=True)
    (root / "first.eml").write_bytes(FIRST)
    mbox = b""
    for data in (THANKS, OTHER):
        mbox += b"From MAILER-DAEMON Thu Nov  5 10:00:00 2026\n" + data + b"\n"
    (root / "archive.mbox").write_bytes(mbox)
    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1764000000.M1P1.host:2,S").write_bytes(REPLY)
    return root


def _read(path: Path) -> tuple[dict[str, SourceDocument], list[Skipped]]:
    docs: dict[str, SourceDocument] = {}
    skipped: list[Skipped] = []
    for item in FileSource(path).read():
        if isinstance(item, Skipped):
            skipped.append(item)
        else:
            docs[item.doc_id] = item
    return docs, skipped


def test_a_thread_is_reassembled_across_eml_mbox_and_maildir(tmp_path: Path) -> None:
    docs, skipped = _read(_mailbox(tmp_path / "mail"))
    thread = docs[f"mail:{ROOT}"]
    assert thread.title == "Order 1042 arrived damaged"
    # Carol and support wrote the first and the third message to each other: one
    # document, in date order, each message once, quotes and attributions gone.
    assert thread.text.index("cracked teapot lid") < thread.text.index("courier came already")
    assert thread.text.count("cracked teapot lid") == 1
    assert "ships tomorrow" not in thread.text  # the third message's quoted tail
    assert "wrote:" not in thread.text
    assert "Original Message" not in thread.text
    assert thread.metadata["messages"] == 2
    assert thread.metadata["sender"] == "carol@customer.example"
    assert thread.metadata["mail_subject"] == "Order 1042 arrived damaged"
    assert thread.metadata["date"].startswith("2026-11-01")
    assert thread.metadata["last_date"].startswith("2026-11-03")
    assert thread.acl == ("user:carol@customer.example", "user:support@shop.example")
    # The reply copied dispatch in: it is a document of its own audience, same thread.
    (copied,) = [d for k, d in docs.items() if k.startswith(f"mail:{ROOT}#")]
    assert "ships tomorrow" in copied.text
    assert "teapot" not in copied.text  # only in the stripped quote
    assert copied.metadata["thread"] == f"mail:{ROOT}"
    assert copied.metadata["messages"] == 1
    assert copied.acl == (
        "user:carol@customer.example",
        "user:dispatch@shop.example",
        "user:support@shop.example",
    )
    assert docs["mail:newsletter-7@shop.example"].acl == (
        "user:erin@else.example",
        "user:news@shop.example",
    )
    # The text attachment is a child document of the thread; the workbook has no loader.
    child = docs[f"mail:{ROOT}/1/photo-notes.txt"]
    assert "fragile" in child.text
    assert child.acl == thread.acl
    assert child.metadata["thread"] == f"mail:{ROOT}"
    assert [(s.item, s.reason) for s in skipped] == [
        (
            f"mail:{ROOT}/1/invoice.xlsx",
            "attachment of type application/vnd.ms-excel has no loader",
        )
    ]


def test_strip_quotes_keeps_the_new_words_only() -> None:
    body = (
        "Sounds good.\n\nOn Tue, Nov 2, 2026 at 10:00 AM Sam <s@x.example> wrote:\n"
        "> earlier\n>> even earlier\n"
    )
    assert strip_quotes(body) == "Sounds good."
    outlook = "Yes.\n\nFrom: Sam <s@x.example>\nSent: Tuesday\nTo: Carol\n\nearlier text"
    assert strip_quotes(outlook) == "Yes."
    # A message that only forwards keeps the forwarded text.
    assert "hello" in strip_quotes("---------- Forwarded message ---------\nhello")


def test_the_people_on_a_thread_see_it_and_nobody_else(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = _mailbox(tmp_path / "mail")
    report = kb.ingest_path(root, "mail")
    assert report.added == 4  # two audiences of one thread, the newsletter, one attachment
    hits = kb.search("mail", "cracked teapot", "carol@customer.example", mode="bm25")
    assert {h.doc_id for h in hits} == {f"mail:{ROOT}"}
    assert kb.search("mail", "teapot", "erin@else.example", mode="bm25") == []
    assert kb.search("mail", "teapot", "mallory", groups=("everyone",), mode="bm25") == []
    # Dispatch was copied in on the reply: it reads the reply, not the messages before it
    # nor their attachments, as in its own mailbox.
    seen = kb.search("mail", "replacement ships tomorrow", "dispatch@shop.example", mode="bm25")
    assert [h.doc_id.startswith(f"mail:{ROOT}#") for h in seen] == [True]
    assert kb.search("mail", "teapot", "dispatch@shop.example", mode="bm25") == []
    assert kb.search("mail", "fragile", "dispatch@shop.example", mode="bm25") == []
    assert kb.search("mail", "fragile", "carol@customer.example", mode="bm25")[0].doc_id == (
        f"mail:{ROOT}/1/photo-notes.txt"
    )
    doc = kb.get_document("mail", f"mail:{ROOT}")
    assert doc is not None
    assert doc.private
    # An explicit --acl is added to the people (the default group:everyone is not).
    kb.ingest_path(root, "mail2", acl=["group:support"])
    again = kb.get_document("mail2", f"mail:{ROOT}")
    assert again is not None
    assert "group:support" in again.acl
    assert "user:carol@customer.example" in again.acl
    assert "group:everyone" not in again.acl


def test_corrupt_mail_is_skipped_with_reasons(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = _mailbox(tmp_path / "mail")
    (root / "binary.eml").write_bytes(b"\x00\x01\x02 garbage")
    (root / "notes.eml").write_bytes(b"just some words, no headers at all\n")
    (root / "broken.mbox").write_bytes(b"this is not a mailbox\n")
    (root / "mixed.mbox").write_bytes(
        b"From x Thu Nov  5 10:00:00 2026\n\x00\x00\x00\nFrom y Thu Nov  5 10:00:00 2026\n"
        + OTHER.replace(b"newsletter-7", b"newsletter-8")
    )
    report = kb.ingest_path(root, "mail")
    reasons = {s.item: s.reason for s in report.skipped}
    assert reasons["binary.eml"].startswith("corrupt e-mail file: binary content")
    assert reasons["notes.eml"].startswith("corrupt e-mail file: not an e-mail message")
    assert reasons["broken.mbox"] == (
        "corrupt mbox file: not an mbox file (it does not start with a 'From ' line)"
    )
    assert reasons["mixed.mbox:1"].startswith("corrupt message: binary content")
    assert kb.get_document("mail", "mail:newsletter-8@shop.example") is not None
    assert kb.get_document("mail", f"mail:{ROOT}") is not None


def test_incremental_sync_of_a_mailbox(kb: KnowledgeBase, tmp_path: Path) -> None:
    root = _mailbox(tmp_path / "mail")
    kb.ingest_path(root, "mail")
    again = kb.ingest_path(root, "mail")
    assert (again.added, again.updated, again.deleted, again.chunks) == (0, 0, 0, 0)
    assert again.unchanged == 4
    late = _mail(
        "reply-3@shop.example",
        "support@shop.example",
        ["carol@customer.example"],
        "Re: Order 1042 arrived damaged",
        "Glad to hear it. Closing this case.\n\n> Thanks, the courier came already.",
        5,
        reply_to=[ROOT, "reply-1@shop.example", "reply-2@customer.example"],
    )
    (root / "Maildir" / "new" / "1764100000.M2P2.host").write_bytes(late)
    third = kb.ingest_path(root, "mail")
    assert (third.added, third.updated, third.unchanged) == (0, 1, 3)
    doc = kb.get_document("mail", f"mail:{ROOT}")
    assert doc is not None
    assert doc.metadata["messages"] == 3  # carol and support's audience
    assert "Closing this case" in doc.text
    (root / "first.eml").unlink()  # the attachment's message is gone; the root id stays
    fourth = kb.ingest_path(root, "mail")
    assert fourth.deleted >= 1
    assert kb.get_document("mail", f"mail:{ROOT}") is not None
    assert kb.get_document("mail", f"mail:{ROOT}/1/photo-notes.txt") is None


def test_erase_a_thread_removes_its_attachments_and_chunks(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    kb.ingest_path(_mailbox(tmp_path / "mail"), "mail")
    receipt = erase(kb, "mail", where=f"thread=mail:{ROOT}")
    assert receipt.documents == 3  # both audiences' documents and the attachment
    with kb.store.session() as s:
        for table in (KbDocument, KbChunk, KbDocMeta):
            left = s.scalars(
                sa.select(table.doc_id).where(
                    table.collection == "mail", table.doc_id.like("mail:order%")
                )
            ).all()
            assert left == []
    assert kb.search("mail", "fragile teapot", "carol@customer.example", mode="bm25") == []
    assert kb.get_document("mail", "mail:newsletter-7@shop.example") is not None
