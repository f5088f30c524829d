"""Text analyzers of the keyword index: which words a collection's chunks are indexed as.

A collection chooses its analyzer when it is created (``english`` by default); it is
recorded on each generation (``kb_generations.analyzer``) and applied by the keyword
index of both backends, at write time (triggers) and at query time:

- ``english``: SQLite FTS5's ``porter unicode61 remove_diacritics 2``; PostgreSQL's
  ``english`` text search configuration (the behaviour of every earlier version).
- ``simple``: no stemming, no stop words (FTS5 ``unicode61 remove_diacritics 2``;
  PostgreSQL ``simple``).
- a language (``german``, ``french``, ...): the Snowball stemmer of that language. On
  PostgreSQL its configuration of the same name (which also drops that language's stop
  words); on SQLite each word is stemmed in Python by ``snowballstemmer`` (the
  ``daytwo_analyze`` SQL function every SQLite connection of :func:`make_engine` has)
  before ``unicode61 remove_diacritics 2`` indexes it; stop words stay.

The names are PostgreSQL's configuration names (every one shipped since PostgreSQL 13),
so the analyzer is the ``regconfig`` as it is.
"""

from __future__ import annotations

import functools
import re

from daytwo.exceptions import InputError

__all__ = ["ANALYZERS", "DEFAULT_ANALYZER", "STEMMED", "analyze_text", "check_analyzer"]

DEFAULT_ANALYZER = "english"
STEMMED = (
    "arabic",
    "danish",
    "dutch",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
)
"""The languages stemmed by Snowball in Python on SQLite (all but ``english``)."""
ANALYZERS = ("english", "simple", *STEMMED)

_WORD = re.compile(r"\w+", re.UNICODE)


def check_analyzer(name: str | None) -> str:
    """The analyzer ``name`` (lower-cased; the default for None), or an InputError listing
    the supported ones."""
    if name is None:
        return DEFAULT_ANALYZER
    analyzer = str(name).strip().lower()
    if analyzer not in ANALYZERS:
        raise InputError(
            f"unknown analyzer {name!r}",
            hint="use one of: " + ", ".join(ANALYZERS),
        )
    return analyzer


@functools.lru_cache(maxsize=len(STEMMED))
def _stemmer(language: str) -> object:
    import snowballstemmer  # type: ignore[import-untyped]

    return snowballstemmer.stemmer(language)


@functools.lru_cache(maxsize=200_000)
def _stem(language: str, word: str) -> str:
    return str(_stemmer(language).stemWord(word))  # type: ignore[attr-defined]


def analyze_text(analyzer: str | None, text: str | None) -> str:
    """``text`` as the SQLite index of ``analyzer`` reads it: each word lower-cased and
    stemmed for a Snowball language, the text unchanged otherwise (FTS5 tokenizes it)."""
    if text is None:
        return ""
    if analyzer not in STEMMED:
        return text
    return _WORD.sub(lambda m: _stem(analyzer, m.group(0).lower()), text)
