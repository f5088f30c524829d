"""Sample golden set of the support agent (and its small knowledge base) shipped with daytwo."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_SET_NAME", "sample_docs_path", "sample_golden_path"]

SAMPLE_SET_NAME = "sample-support"
"""Name under which the quickstart stores the sample golden set."""


def sample_golden_path() -> Path:
    """JSONL of the sample golden cases."""
    return Path(__file__).with_name("support_golden.jsonl")


def sample_docs_path() -> Path:
    """JSONL of the sample knowledge-base documents the cases cite (``id``, ``title``, ``text``)."""
    return Path(__file__).with_name("docs.jsonl")
