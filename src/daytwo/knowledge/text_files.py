"""The text of a file: plain text, Markdown, HTML and PDF (``parse_bytes``).

Used by the folder source and by the readers of attachments (e-mail), below both.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

__all__ = ["FILE_TYPES", "decode_text", "html_text", "parse_bytes", "parse_file", "read_text"]

FILE_TYPES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}


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


def read_text(path: Path) -> str:
    return decode_text(path.read_bytes())


def decode_text(data: bytes) -> str:
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
    raw = decode_text(data)
    if ext in {".html", ".htm"}:
        title, text = html_text(raw)
        return title or stem, text
    if ext in {".md", ".markdown"}:
        match = re.search(r"^#\s+(.+)$", raw, flags=re.MULTILINE)
        return (match.group(1).strip() if match else stem), raw.strip()
    return stem, raw.strip()
