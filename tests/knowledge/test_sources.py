"""Sources: folders of txt/md/html/pdf, JSONL/CSV (BEIR), SQL tables and queries; skip reasons."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.sources import FileSource, Skipped, SourceDocument, SqlSource, open_source

from .conftest import write_docs


def _pdf_with_text(text: str) -> bytes:
    """A minimal, valid one-page PDF whose page shows ``text`` (Helvetica)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _read(source: FileSource | SqlSource) -> tuple[dict[str, SourceDocument], dict[str, str]]:
    docs: dict[str, SourceDocument] = {}
    skipped: dict[str, str] = {}
    for item in source.read():
        if isinstance(item, Skipped):
            skipped[item.item] = item.reason
        else:
            docs[item.doc_id] = item
    return docs, skipped


def test_folder_of_files_with_per_file_skip_reasons(tmp_path: Path) -> None:
    root = write_docs(
        tmp_path / "docs",
        {
            "guide.md": "# Install guide\n\nRun the installer.",
            "notes.txt": "plain notes about billing",
            "page.html": "<html><head><title>Help page</title></head><body><p>Visible text"
            "</p><script>hidden()</script></body></html>",
            "sub/deep.md": "nested document",
            "image.svg": "not really an image",
            "empty.txt": "   ",
            ".hidden/secret.txt": "dot folders are ignored",
        },
    )
    (root / "report.pdf").write_bytes(_pdf_with_text("Quarterly revenue grew"))
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a real pdf")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    docs, skipped = _read(FileSource(root))
    assert set(docs) == {"guide.md", "notes.txt", "page.html", "sub/deep.md", "report.pdf"}
    assert docs["guide.md"].title == "Install guide"
    assert docs["page.html"].title == "Help page"
    assert "Visible text" in docs["page.html"].text
    assert "hidden()" not in docs["page.html"].text
    assert "Quarterly revenue grew" in docs["report.pdf"].text
    assert docs["sub/deep.md"].metadata == {"path": "sub/deep.md", "type": "md"}
    assert skipped["image.svg"] == "unsupported file type .svg"
    assert skipped["empty.txt"] == "no text in the file"
    assert skipped["broken.pdf"].startswith("corrupt pdf file")
    assert "not UTF-8" in skipped["latin1.txt"]
    assert "binary" in skipped["binary.txt"]


def test_beir_folder_jsonl_and_csv(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    beir.mkdir()
    lines = [
        {"_id": "d1", "title": "One", "text": "first", "metadata": {"lang": "en"}},
        {"_id": "d2", "text": "second"},
        {"title": "no id"},
        "not an object",
    ]
    (beir / "corpus.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n{broken json\n", encoding="utf-8"
    )
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "ignored"}\n', encoding="utf-8")
    docs, skipped = _read(FileSource(beir))
    assert set(docs) == {"d1", "d2"}
    assert docs["d1"].metadata == {"lang": "en"}
    assert docs["d1"].title == "One"
    assert set(skipped) == {"corpus.jsonl:3", "corpus.jsonl:4", "corpus.jsonl:5", "queries.jsonl"}
    assert "no id field" in skipped["corpus.jsonl:3"]
    assert "only it is read" in skipped["queries.jsonl"]
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("id,title,text,team\n1,A,alpha text,red\n2,B,,blue\n", encoding="utf-8")
    docs, skipped = _read(FileSource(csv_file))
    assert docs["1"].metadata == {"team": "red"}
    assert docs["2"].text == ""  # empty text: the ingest skips it with a reason


def test_sql_table_and_query(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE articles (id INTEGER, title TEXT, body TEXT, team TEXT)")
        conn.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?)",
            [
                (1, "Alpha", "alpha body", "red"),
                (2, "Beta", "beta body", "blue"),
                (3, "x", None, ""),
            ],
        )
    url = f"sqlite:///{db}"
    docs, skipped = _read(SqlSource(url, table="articles", text_column="body"))
    assert set(docs) == {"1", "2"}
    assert docs["1"].metadata == {"team": "red"}
    assert list(skipped) == ["row 3"]
    docs, _ = _read(
        SqlSource(url, query="SELECT id, body AS text FROM articles WHERE team = 'blue'")
    )
    assert set(docs) == {"2"}
    with pytest.raises(InputError, match="needs a table or a query"):
        SqlSource(url)
    with pytest.raises(InputError, match="cannot read"):
        list(SqlSource(url, table="missing").read())


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_source(str(tmp_path / "nope"))
    assert isinstance(open_source(f"sqlite:///{tmp_path}/x.db", table="t"), SqlSource)


def test_a_folder_with_corpus_jsonl_names_every_other_file_it_skips(tmp_path: Path) -> None:
    """Issue 20: a folder holding corpus.jsonl read only that file and silently ignored the
    rest; every other file is now a skip with its reason."""
    folder = write_docs(
        tmp_path / "set",
        {
            "corpus.jsonl": '{"_id": "d1", "text": "a passage"}\n',
            "queries.jsonl": '{"_id": "q1", "text": "a query"}\n',
            "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
            "notes.md": "# Notes\nHand-written notes.",
            ".hidden/x.md": "hidden",
        },
    )
    items = list(open_source(str(folder)).read())
    docs = [i.doc_id for i in items if not isinstance(i, Skipped)]
    skipped = {i.item: i.reason for i in items if isinstance(i, Skipped)}
    assert docs == ["d1"]
    assert set(skipped) == {"queries.jsonl", "qrels/test.tsv", "notes.md"}
    assert all("only it is read" in reason for reason in skipped.values())


def test_folder_ingest_never_follows_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET system file outside the folder")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a handbook page")
    (folder / "sub" / "b.txt").write_text("another page")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    (folder / "inside-link.txt").symlink_to(folder / "a.txt")  # stays inside: read
    out = list(FileSource(folder).read())
    docs = {d.doc_id: d for d in out if isinstance(d, SourceDocument)}
    skipped = {s.item: s.reason for s in out if isinstance(s, Skipped)}
    assert sorted(docs) == ["a.txt", "inside-link.txt", "sub/b.txt"]
    assert all("SECRET" not in d.text for d in docs.values())
    assert "link.txt" in skipped
    assert "outside the folder" in skipped["link.txt"]
    assert all("SECRET" not in str(s) for s in skipped.values())
