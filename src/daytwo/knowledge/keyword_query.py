"""Keyword options: boolean syntax with phrases, a title boost, highlights with offsets.

``syntax="boolean"`` reads the query as (Elasticsearch ``query_string`` style, default
operator OR)::

    refund AND (card OR "bank transfer") NOT voucher     -excluded   "exact phrase"

``AND`` binds tighter than ``OR``; ``NOT x`` and ``-x`` exclude ``x`` from their group
(``refund -voucher``: refund, and not voucher, as in Elasticsearch); parentheses group; a
quoted phrase matches its words at consecutive positions (the same column on SQLite).
Matching is decided here over the index's postings and positions (FTS5's instance
vocabulary, PostgreSQL's tsvector positions), the same rules on both backends; the
hits that match are ranked with BM25 of the terms that are not negated, with the
statistics of the principal's permitted set (:mod:`daytwo.knowledge.bm25`).

``title_boost``: a term's frequency in the chunk's title counts ``title_boost`` times
(1 = title and body alike, the default; 0 = body only), a BM25F-style field weight.

Every step reads the generation's analyzer (:mod:`daytwo.store.analyzers`). Where the
backends differ, for the default ``english``: SQLite FTS5 stems with Porter and keeps
stop words; PostgreSQL's ``english`` configuration stems with Snowball and drops stop
words from the index (a language's configuration drops that language's), so on
PostgreSQL a stop word in a query matches nothing and is ignored (``the AND refund`` is
``refund``), and a phrase's stop words are gaps of one position.
On PostgreSQL the title and the text are one tsvector (title first), so a phrase can
span the end of the title and the start of the text; on SQLite it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from daytwo.exceptions import InputError
from daytwo.knowledge.bm25 import Permitted, Postings, rank
from daytwo.knowledge.fts import _TERM, analyzer_of, query_terms, stem_words, terms_table
from daytwo.knowledge.keysets import members

__all__ = [
    "Highlight",
    "KeywordOptions",
    "boolean_constraint",
    "boolean_search",
    "highlights",
    "parse_query",
]

Keys = npt.NDArray[np.uint64]
MAX_NODES = 64


@dataclass(frozen=True)
class KeywordOptions:
    """How the keyword half reads and weighs the query, and whether to mark the hits."""

    syntax: Literal["plain", "boolean"] = "plain"
    title_boost: float = 1.0
    highlight: bool = False

    def __post_init__(self) -> None:
        if self.syntax not in ("plain", "boolean"):
            raise InputError(
                f"unknown query syntax {self.syntax!r}", hint="use 'plain' or 'boolean'"
            )
        if isinstance(self.title_boost, bool) or not 0.0 <= float(self.title_boost) <= 10.0:
            raise InputError(
                f"title_boost {self.title_boost!r} is outside [0, 10]", hint="e.g. 2.0"
            )

    @property
    def custom(self) -> bool:
        """Whether the keyword half needs this module (else the plain BM25 path serves)."""
        return self.syntax == "boolean" or self.title_boost != 1.0


@dataclass(frozen=True)
class Highlight:
    """A query term found in a hit: the field and the character offsets [start, end)."""

    field: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "start": self.start, "end": self.end}


# --- parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    word: str


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Op:
    kind: Literal["and", "or", "not"]
    items: tuple[Node, ...]


Node = Term | Phrase | Op
_TOKEN = re.compile(r'\s*(?:(")|(\()|(\))|(-)(?=["(\w])|(\w+))', re.UNICODE)


def parse_query(query: str) -> Node:
    """The boolean query's tree (InputError naming the problem for a malformed one)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        if query[pos].isspace():
            pos += 1
            continue
        if query[pos] == '"':
            end = query.find('"', pos + 1)
            if end < 0:
                raise InputError(
                    f"unterminated phrase at character {pos}", hint='close it: "exact words"'
                )
            words = tuple(m.group(0).lower() for m in _TERM.finditer(query[pos + 1 : end]))
            if not words:
                raise InputError(f"empty phrase at character {pos}", hint="put words in it")
            tokens.append(("phrase", " ".join(words)))
            pos = end + 1
            continue
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            pos += 1  # punctuation between words, as the plain syntax ignores it
            continue
        if match.group(2):
            tokens.append(("(", "("))
        elif match.group(3):
            tokens.append((")", ")"))
        elif match.group(4):
            tokens.append(("not", "-"))
        else:
            word = match.group(5)
            if word in ("AND", "OR", "NOT"):
                tokens.append((word.lower(), word))
            else:
                tokens.append(("word", word.lower()))
        pos = match.end()
    parser = _Parser(tokens)
    node = parser.parse_or()
    if parser.i < len(tokens):
        raise InputError(
            f"unexpected {tokens[parser.i][1]!r} in the query", hint="check the parentheses"
        )
    if not _positive(node):
        raise InputError(
            "the query only excludes terms", hint="add a term to search for, e.g. refund -card"
        )
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.i, self.nodes = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.peek() not in (None, ")"):
            if self.peek() == "or":
                self.i += 1
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Op("or", tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while self.peek() == "and":
            self.i += 1
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else Op("and", tuple(items))

    def parse_unary(self) -> Node:
        if self.peek() == "not":
            self.i += 1
            return Op("not", (self.parse_unary(),))
        return self.parse_atom()

    def parse_atom(self) -> Node:
        kind = self.peek()
        if kind is None or kind in ("and", "or", ")"):
            found = "the end" if kind is None else repr(self.tokens[self.i][1])
            raise InputError(
                f"the query expects a word, phrase or ( but found {found}",
                hint='e.g. refund AND (card OR "bank transfer")',
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InputError(f"the query has more than {MAX_NODES} terms", hint="shorten it")
        kind, text = self.tokens[self.i]
        self.i += 1
        if kind == "(":
            node = self.parse_or()
            if self.peek() != ")":
                raise InputError("a parenthesis is not closed", hint="add the missing )")
            self.i += 1
            return node
        if kind == "phrase":
            words = tuple(text.split(" "))
            return Phrase(words) if len(words) > 1 else Term(words[0])
        return Term(text)


def _positive(node: Node) -> bool:
    """Whether some term of the query is not negated."""
    if isinstance(node, Op):
        return node.kind != "not" and any(_positive(i) for i in node.items)
    return True


def _words(node: Node, negated: bool = False) -> Iterable[tuple[str, bool]]:
    if isinstance(node, Term):
        yield node.word, negated
    elif isinstance(node, Phrase):
        for word in node.words:
            yield word, negated
    else:
        for item in node.items:
            yield from _words(item, negated or node.kind == "not")


# --- evaluation -----------------------------------------------------------------------


@dataclass
class _Index:
    """Postings of the query's stems: per stem, chunk -> (tf, title tf, positions)."""

    tf: dict[str, dict[int, float]]
    title_tf: dict[str, dict[int, float]]
    positions: dict[str, dict[tuple[int, int], set[int]]]


def boolean_search(
    session: Session,
    generation: str,
    query: str,
    k: int,
    permitted: Permitted,
    options: KeywordOptions,
) -> list[tuple[int, float]]:
    """Top-``k`` (chunk pk, BM25 score) of the permitted chunks matching the query."""
    connection = session.connection()
    analyzer = analyzer_of(connection, generation)
    node = parse_query(query) if options.syntax == "boolean" else _plain(query, analyzer)
    words = list(dict.fromkeys(w for w, _ in _words(node)))
    if not words or permitted.keys.size == 0:
        return []
    stems = stem_words(connection, words, analyzer)
    all_stems = sorted({s for w in words for s in stems[w]})
    index = _read(connection, generation, all_stems, options.title_boost != 1.0, analyzer)
    matched = _match(node, stems, index, permitted, connection, analyzer)
    if matched is None or matched.size == 0:
        return []
    positive = sorted({s for w, neg in _words(node) if not neg for s in stems[w]})
    postings = []
    for stem in positive:
        tf = index.tf.get(stem, {})
        title = index.title_tf.get(stem, {})
        keys = np.fromiter(tf, dtype=np.uint64, count=len(tf))
        weights = np.fromiter(
            (tf[int(key)] + (options.title_boost - 1.0) * title.get(int(key), 0.0) for key in keys),
            dtype=np.float32,
            count=len(tf),
        )
        keep = weights > 0
        order = np.argsort(keys[keep], kind="stable")
        postings.append(Postings(stem, keys[keep][order], weights[keep][order]))
    ranked = rank(postings, permitted, int(permitted.keys.size))
    keep_keys = set(matched.tolist())
    return [(pk, score) for pk, score in ranked if pk in keep_keys][:k]


def boolean_constraint(
    session: Session, generation: str, query: str, permitted: Permitted
) -> Keys | None:
    """The permitted chunks a boolean query does not rule out, for the dense half of a
    search (None: it rules out none).

    Only what the query requires or excludes constrains: an ``AND`` group must match
    (with its phrases and negations), a ``NOT``/``-x`` excludes from its group, while
    the terms of an ``OR`` group (the default between terms) are alternatives that rank
    the keyword half; so ``refund -voucher`` keeps every chunk without "voucher" for the
    vector search (which finds "reimbursement" too), ``refund AND card`` only chunks
    with both, and a lone term or phrase constrains nothing."""
    node = parse_query(query)
    words = list(dict.fromkeys(w for w, _ in _words(node)))
    if not words or permitted.keys.size == 0:
        return None
    connection = session.connection()
    analyzer = analyzer_of(connection, generation)
    stems = stem_words(connection, words, analyzer)
    all_stems = sorted({s for w in words for s in stems[w]})
    index = _read(connection, generation, all_stems, False, analyzer)
    return _constraint(node, stems, index, permitted, connection, analyzer)


def _constraint(
    node: Node,
    stems: dict[str, tuple[str, ...]],
    index: _Index,
    permitted: Permitted,
    connection: Connection,
    analyzer: str,
) -> Keys | None:
    if not isinstance(node, Op) or node.kind == "not":
        return None  # a term, a phrase: alternatives; a NOT is applied by its group
    if node.kind == "and":
        return _match(node, stems, index, permitted, connection, analyzer)
    negated = [i.items[0] for i in node.items if isinstance(i, Op) and i.kind == "not"]
    others = [i for i in node.items if not (isinstance(i, Op) and i.kind == "not")]
    allowed = [_constraint(i, stems, index, permitted, connection, analyzer) for i in others]
    out = permitted.keys
    if allowed and all(a is not None for a in allowed):
        out = np.unique(np.concatenate([a for a in allowed if a is not None]))
    excluded = [_match(i, stems, index, permitted, connection, analyzer) for i in negated]
    if out is permitted.keys and all(e is None for e in excluded):
        return None
    for part in excluded:
        if part is not None:
            out = np.setdiff1d(out, part, assume_unique=True)
    return out


def _plain(query: str, analyzer: str) -> Node:
    """The plain syntax as a tree: its words, ORed (what the default path scores)."""
    terms = query_terms(query, analyzer)
    return Op("or", tuple(Term(t) for t in terms)) if terms else Op("or", ())


def _read(
    connection: Connection, generation: str, stems: Sequence[str], titles: bool, analyzer: str
) -> _Index:
    index = _Index({}, {}, {})
    if not stems:
        return index
    if connection.dialect.name == "sqlite":
        cursor = connection.connection.cursor()
        try:
            for stem in stems:
                tf: dict[int, float] = {}
                title: dict[int, float] = {}
                where: dict[tuple[int, int], set[int]] = {}
                for doc, col, offset in cursor.execute(
                    f"SELECT doc, col, offset FROM {terms_table(analyzer)} WHERE term = ?",
                    (stem,),
                ):
                    doc = int(doc)
                    tf[doc] = tf.get(doc, 0.0) + 1.0
                    column = 0 if col == "title" else 1
                    if column == 0:
                        title[doc] = title.get(doc, 0.0) + 1.0
                    where.setdefault((doc, column), set()).add(int(offset))
                index.tf[stem], index.title_tf[stem], index.positions[stem] = tf, title, where
        finally:
            cursor.close()
        return index
    tsquery = " | ".join("'" + s.replace("'", "''") + "'" for s in stems)
    rows = connection.exec_driver_sql(
        "SELECT u.lexeme, c.id, u.positions FROM kb_chunks AS c "
        "CROSS JOIN LATERAL unnest(ts_delete(c.fts, tsvector_to_array("
        "ts_delete(c.fts, CAST(%(lex)s AS text[]))))) AS u "
        "WHERE c.generation = %(gen)s AND c.fts @@ CAST(%(q)s AS tsquery)",
        {"gen": generation, "q": tsquery, "lex": list(stems)},
    ).all()
    for lexeme, pk, positions in rows:
        index.tf.setdefault(lexeme, {})[int(pk)] = float(len(positions or ()) or 1)
        index.positions.setdefault(lexeme, {})[(int(pk), 0)] = {int(p) for p in positions or ()}
    if titles:
        candidates = sorted({pk for tf in index.tf.values() for pk in tf})
        title_rows = connection.exec_driver_sql(
            "SELECT u.lexeme, c.id, cardinality(u.positions) FROM kb_chunks AS c "
            "CROSS JOIN LATERAL unnest(to_tsvector(c.fts_config, "
            "coalesce(c.title, ''))) AS u WHERE c.id = ANY(%(pks)s) AND u.lexeme = ANY(%(lex)s)",
            {"pks": candidates, "lex": list(stems)},
        ).all()
        for lexeme, pk, count in title_rows:
            index.title_tf.setdefault(lexeme, {})[int(pk)] = float(count or 0)
    return index


def _keys(values: Iterable[int], permitted: Permitted) -> Keys:
    keys = np.unique(np.fromiter(values, dtype=np.uint64))
    return keys[members(keys, permitted.keys)]


def _match(
    node: Node,
    stems: dict[str, tuple[str, ...]],
    index: _Index,
    permitted: Permitted,
    connection: Connection,
    analyzer: str,
) -> Keys | None:
    """The permitted chunks matching ``node`` (None: the node has no indexed term)."""
    if isinstance(node, Term):
        found = stems.get(node.word, ())
        if not found:
            return None
        return _keys((pk for s in found for pk in index.tf.get(s, {})), permitted)
    if isinstance(node, Phrase):
        return _phrase(node, stems, index, permitted, connection, analyzer)
    if node.kind == "or":  # a negation excludes from its group (Elasticsearch's must_not)
        negated = [i.items[0] for i in node.items if isinstance(i, Op) and i.kind == "not"]
        others = [i for i in node.items if not (isinstance(i, Op) and i.kind == "not")]
        matches = [_match(i, stems, index, permitted, connection, analyzer) for i in others]
        excluded = [_match(i, stems, index, permitted, connection, analyzer) for i in negated]
        known = [f for f in matches if f is not None]
        if not known:
            if not others and any(e is not None for e in excluded):
                known = [permitted.keys]
            else:
                return None
        out = np.unique(np.concatenate(known))
        for part in excluded:
            if part is not None:
                out = np.setdiff1d(out, part, assume_unique=True)
        return out
    parts = [_match(i, stems, index, permitted, connection, analyzer) for i in node.items]
    known = [p for p in parts if p is not None]
    if not known:
        return None
    if node.kind == "not":
        return np.setdiff1d(permitted.keys, known[0], assume_unique=True)
    both = known[0]
    for piece in known[1:]:
        both = np.intersect1d(both, piece, assume_unique=True)
    return both


def _phrase(
    node: Phrase,
    stems: dict[str, tuple[str, ...]],
    index: _Index,
    permitted: Permitted,
    connection: Connection,
    analyzer: str,
) -> Keys | None:
    offsets = _phrase_offsets(node.words, stems, connection, analyzer)
    if not offsets:
        return None
    first_stem, first_rel = offsets[0]
    candidates: set[tuple[int, int]] = set(index.positions.get(first_stem, {}))
    for stem, _ in offsets[1:]:
        candidates &= set(index.positions.get(stem, {}))
    hits = []
    for where in candidates:
        starts = {p - first_rel for p in index.positions[first_stem][where]}
        for stem, rel in offsets[1:]:
            starts &= {p - rel for p in index.positions[stem][where]}
            if not starts:
                break
        if starts:
            hits.append(where[0])
    return _keys(hits, permitted)


def _phrase_offsets(
    words: Sequence[str],
    stems: dict[str, tuple[str, ...]],
    connection: Connection,
    analyzer: str,
) -> list[tuple[str, int]]:
    """(stem, position relative to the phrase's first indexed word) of a phrase."""
    if connection.dialect.name == "sqlite":
        out = [(stems[w][0], i) for i, w in enumerate(words) if stems.get(w)]
    else:  # the analyzer's own positions: a dropped stop word leaves a gap
        rows = connection.exec_driver_sql(
            "SELECT u.lexeme, p FROM unnest(to_tsvector(CAST(%(cfg)s AS regconfig), %(p)s)) "
            "AS u CROSS JOIN LATERAL unnest(u.positions) AS p",
            {"p": " ".join(words), "cfg": analyzer},
        ).all()
        out = sorted(((str(lex), int(p)) for lex, p in rows), key=lambda r: r[1])
    if not out:
        return []
    base = out[0][1]
    return [(stem, pos - base) for stem, pos in out]


# --- highlights -----------------------------------------------------------------------


def highlights(
    session: Session,
    query: str,
    options: KeywordOptions,
    fields: Sequence[tuple[str, str]],
    generation: str | None = None,
) -> list[list[Highlight]]:
    """Per (title, text) pair of ``fields``: where the query's (non-negated) terms occur,
    as character offsets (Python string indices, i.e. Unicode code points), the words
    analyzed as ``generation``'s index analyzes them (``english`` when None)."""
    connection = session.connection()
    analyzer = "english" if generation is None else analyzer_of(connection, generation)
    node = parse_query(query) if options.syntax == "boolean" else _plain(query, analyzer)
    wanted_words = [w for w, neg in _words(node) if not neg]
    wanted = {s for stems in stem_words(connection, wanted_words, analyzer).values() for s in stems}
    found: list[tuple[int, str, re.Match[str]]] = []
    for i, (title, text) in enumerate(fields):
        for name, value in (("title", title), ("text", text)):
            found.extend((i, name, m) for m in _TERM.finditer(value))
    stems = stem_words(connection, [m.group(0) for _, _, m in found], analyzer) if wanted else {}
    out: list[list[Highlight]] = [[] for _ in fields]
    for i, name, match in found:
        if wanted.intersection(stems.get(match.group(0).lower(), ())):
            out[i].append(Highlight(name, match.start(), match.end()))
    return out
