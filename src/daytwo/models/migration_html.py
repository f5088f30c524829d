"""The migration report as one self-contained HTML page, decision section included."""

from __future__ import annotations

from importlib import resources
from typing import Any

from daytwo.models.decision import Decision
from daytwo.models.migration import MigrationReport

__all__ = ["render_html"]

_SIDE_KEYS = (
    "valid_rate",
    "rungs",
    "overflows",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_p50_s",
    "latency_mean_s",
    "expected_accuracy",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_html(report: MigrationReport, decision: Decision | None = None) -> str:
    """``report`` (and the re-prompt-or-fine-tune ``decision``, when given) as HTML."""
    from jinja2 import Environment

    template = (
        resources.files("daytwo.models")
        .joinpath("templates/migration_report.html")
        .read_text(encoding="utf-8")
    )
    env = Environment(autoescape=True)
    return env.from_string(template).render(
        r=report.model_dump(mode="json"),
        d=None if decision is None else decision.model_dump(mode="json"),
        keys=_SIDE_KEYS,
        fmt=_fmt,
    )
