"""Every dashboard table as CSV or JSON, and dates as ``<time>`` elements.

A page's URL with ``?export=TABLE_ID&format=csv`` (or ``json``) answers with that
table instead of the page: the same handler ran with the same query (filters, window)
for the same key, so an export is tenant-scoped and filtered exactly as the page is.
The table is read from the rendered HTML: the header cells name the columns, a cell's
``data-value`` attribute (a raw id, number or JSON) wins over its text, and a
``<time datetime>`` gives its UTC timestamp. An empty-state row (one cell spanning
the table) is left out. ``static/app.js`` puts the two links under every table that
has an id.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from fastapi.responses import Response
from markupsafe import Markup, escape

from daytwo.exceptions import InputError, NotFoundError

__all__ = ["FORMATS", "export_format", "export_rows", "export_table", "tables_in", "utc_time"]

FORMATS = ("csv", "json")


class _Tables(HTMLParser):
    """Collect ``<table id=...>``: header names and body rows (cell values)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self._stack: list[str | None] = []  # table ids, None for nested anonymous tables
        self._cell: list[str] | None = None
        self._cell_value: str | None = None
        self._cell_span = 1
        self._row: list[str] | None = None
        self._spans: list[int] = []
        self._in_head = False
        self._header: list[str] = []
        self._rows: list[list[str]] = []
        self._skip = 0  # inside <svg>, <script>, <style>: not cell text

    @property
    def _current(self) -> str | None:
        return self._stack[-1] if self._stack else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._stack.append(a.get("id"))
            if a.get("id"):
                self._header, self._rows = [], []
            return
        if self._current is None or len(self._stack) == 0:
            return
        if tag in ("svg", "script", "style"):
            self._skip += 1
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row, self._spans = [], []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cell_value = [], a.get("data-value")
            self._cell_span = int(a.get("colspan") or 1)
        elif tag == "time" and self._cell is not None and self._cell_value is None:
            self._cell_value = a.get("datetime")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            table_id = self._stack.pop() if self._stack else None
            if table_id:
                self.tables[table_id] = (self._header, self._rows)
            return
        if self._current is None:
            return
        if tag in ("svg", "script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = " ".join("".join(self._cell).split())
            self._row.append(self._cell_value if self._cell_value is not None else text)
            self._spans.append(self._cell_span)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._in_head:
                self._header = self._row
            elif not (len(self._row) == 1 and self._spans[0] > 1):  # an empty-state row
                self._rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def tables_in(html: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The tables with an id in ``html``: {id: (column names, rows)}."""
    parser = _Tables()
    parser.feed(html)
    parser.close()
    return parser.tables


def _columns(header: list[str], width: int) -> list[str]:
    names, seen = [], set()
    for i in range(width):
        name = header[i] if i < len(header) and header[i] else f"column {i + 1}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def _json_value(value: str) -> Any:
    """A data-value that holds JSON (a number, an object) as such; anything else as text."""
    if value[:1] in "{[-0123456789" or value in ("true", "false", "null"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def export_table(html: str, table_id: str, fmt: str, filename: str) -> Response:
    """The table ``table_id`` of a rendered page as a CSV or JSON download."""
    if fmt not in FORMATS:
        raise InputError(
            f"unknown export format {fmt[:20]!r}", hint="use format=csv or format=json"
        )
    tables = tables_in(html)
    if table_id not in tables:
        raise NotFoundError(
            f"this page has no table {table_id[:60]!r}",
            hint=f"tables on this page: {', '.join(sorted(tables)) or '(none)'}",
        )
    header, rows = tables[table_id]
    width = max([len(header), *(len(r) for r in rows)])
    columns = _columns(header, width)
    name = f"{filename}-{table_id}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        records = [{c: _json_value(v) for c, v in zip(columns, row, strict=False)} for row in rows]
        body = json.dumps(records, indent=1, ensure_ascii=False)
        return Response(body, media_type="application/json", headers=disposition)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=disposition)


def utc_time(value: datetime | str | None) -> Markup:
    """``<time datetime="...Z">YYYY-MM-DD HH:MM UTC</time>``; app.js shows it in local time."""
    if value is None or value == "":
        return Markup("—")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return escape(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    iso = value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}">{} UTC</time>').format(iso, f"{value:%Y-%m-%d %H:%M}")


# -- whole result sets (more rows than a page shows), e.g. the trace explorer's --------
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def export_format(query: Mapping[str, str]) -> str:
    """The ``format`` of an export request (csv or json); InputError otherwise."""
    fmt = query.get("format", "csv")
    if fmt not in FORMATS:
        raise InputError(
            f"unknown export format {fmt[:20]!r}", hint="use format=csv or format=json"
        )
    return fmt


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading ``'``."""
    value = _plain(value)
    if value is None:
        return ""
    text = (
        json.dumps(value, default=str, ensure_ascii=False)
        if isinstance(value, (dict, list))
        else str(value)
    )
    if text.startswith(_FORMULA) and not _is_number(text):
        text = "'" + text
    return text


def export_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    filename: str,
    *,
    truncated_at: int | None = None,
) -> Response:
    """Rows (dicts) as a CSV (header first) or JSON (array of objects) download.

    For result sets larger than a page (the explorer's filtered table); values keep
    their types in JSON. ``truncated_at`` (the row limit, when the rows stopped there)
    is told in the ``X-Daytwo-Export-Truncated`` header.
    """
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    if truncated_at is not None:
        headers["X-Daytwo-Export-Truncated"] = str(truncated_at)
    if fmt == "json":
        body = json.dumps(
            [{c: _plain(row.get(c)) for c in columns} for row in rows],
            default=str,
            ensure_ascii=False,
        )
        return Response(body, media_type="application/json", headers=headers)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
