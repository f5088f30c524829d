"""``daytwo eval report RUN --html OUT``: one self-contained HTML page (inline SVG, no CDN).

Tables per metric (candidate vs baseline), per failure-mode tag and per case,
with bar charts drawn as inline SVG.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

from daytwo.evals.metrics import LOWER_IS_BETTER
from daytwo.evals.runs import EvalRuns, RunInfo

__all__ = ["bar_chart_svg", "render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.bad{color:#b00020}.good{color:#0a7d28}.muted{color:#777}
"""


def bar_chart_svg(
    labels: list[str], series: dict[str, list[float | None]], *, title: str, max_value: float = 1.0
) -> str:
    """Horizontal grouped bars, one group per label, one bar per series (values 0..max)."""
    colours = ["#3b6fd8", "#b0b0b0", "#e07b39"]
    bar_h, gap, left, width = 12, 8, 220, 420
    n_series = max(1, len(series))
    group_h = bar_h * n_series + gap
    height = 30 + group_h * len(labels) + 20 * n_series
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, label in enumerate(labels):
        y0 = 30 + i * group_h
        parts.append(
            f'<text x="{left - 6}" y="{y0 + bar_h}" font-size="12" text-anchor="end">'
            f"{escape(label[:32])}</text>"
        )
        for j, (_name, values) in enumerate(series.items()):
            v = values[i]
            y = y0 + j * bar_h
            if v is None:
                continue
            w = max(0.0, min(1.0, v / max_value if max_value else 0.0)) * width
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                f'fill="{colours[j % len(colours)]}"/>'
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3}" font-size="10">{v:.3f}</text>'
            )
    y = 30 + group_h * len(labels) + 4
    for j, name in enumerate(series):
        parts.append(
            f'<rect x="{left}" y="{y + j * 18}" width="10" height="10" '
            f'fill="{colours[j % len(colours)]}"/>'
            f'<text x="{left + 14}" y="{y + j * 18 + 9}" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fmt(v: Any) -> str:
    if v is None:
        return '<span class="muted">–</span>'
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def render_html(runs: EvalRuns, run_id: str, baseline_id: str | None = None) -> str:
    """The report of a run, compared with ``baseline_id`` (default: the previous run of its set)."""
    run = runs.get(run_id)
    base: RunInfo | None = runs.get(baseline_id) if baseline_id else runs.previous(run.id)
    cm = run.summary.get("metrics", {})
    bm = base.summary.get("metrics", {}) if base else {}
    names = sorted(cm, key=lambda n: (cm[n]["component"], n))
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>daytwo eval report {escape(run.id[:12])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Eval run {escape(run.id[:12])}</h1>",
        f"<p>agent <b>{escape(run.agent)}@{escape(run.agent_version)}</b> on set "
        f"<b>{escape(run.set_name)}@{run.set_version}</b>, {run.repeats} repeat(s), "
        f"{run.summary.get('cases', 0)} cases, {run.summary.get('errors', 0)} errors, "
        f"status {escape(run.status)}, started {escape(run.started_at)}.</p>",
    ]
    if base:
        out.append(
            f"<p>Baseline: run {escape(base.id[:12])} ({escape(base.agent)}@"
            f"{escape(base.agent_version)}, set version {base.set_version}).</p>"
        )
    out.append("<h2>Metrics</h2><table><tr><th>metric</th><th>component</th><th>candidate</th>")
    out.append("<th>baseline</th><th>delta</th><th>cases</th><th>missing</th></tr>")
    for n in names:
        c = cm[n].get("mean")
        b = bm.get(n, {}).get("mean") if bm else None
        delta = c - b if c is not None and b is not None else None
        cls = ""
        if delta:
            better = delta < 0 if n in LOWER_IS_BETTER else delta > 0
            cls = "good" if better else "bad"
        out.append(
            f"<tr><td>{escape(n)}</td><td>{escape(cm[n]['component'])}</td><td>{_fmt(c)}</td>"
            f"<td>{_fmt(b)}</td><td class='{cls}'>{_fmt(delta)}</td>"
            f"<td>{cm[n].get('cases', 0)}</td><td>{cm[n].get('missing', 0)}</td></tr>"
        )
    out.append("</table>")
    unit = [n for n in names if n not in LOWER_IS_BETTER and n != "judge_failure"]
    if unit:
        series: dict[str, list[float | None]] = {
            f"candidate {run.id[:8]}": [cm[n].get("mean") for n in unit]
        }
        if base:
            series[f"baseline {base.id[:8]}"] = [bm.get(n, {}).get("mean") for n in unit]
        out.append(bar_chart_svg(unit, series, title="Quality metrics (0–1)"))
    tags = run.summary.get("by_tag", {})
    if tags:
        tag_metrics = sorted({m for v in tags.values() for m in v if m not in LOWER_IS_BETTER})
        out.append("<h2>Per failure-mode tag</h2><table><tr><th>tag</th>")
        out.extend(f"<th>{escape(m)}</th>" for m in tag_metrics)
        out.append("</tr>")
        for tag, vals in tags.items():
            cells = "".join(f"<td>{_fmt(vals.get(m))}</td>" for m in tag_metrics)
            out.append(f"<tr><td>{escape(tag)}</td>{cells}</tr>")
        out.append("</table>")
        main = next(
            (m for m in ("fuzzy_match", "fact_recall", "tool_call_accuracy") if m in tag_metrics),
            tag_metrics[0] if tag_metrics else None,
        )
        if main:
            labels = sorted(tags)
            tag_series: dict[str, list[float | None]] = {
                "candidate": [tags[t].get(main) for t in labels]
            }
            if base:
                btags = base.summary.get("by_tag", {})
                tag_series["baseline"] = [btags.get(t, {}).get(main) for t in labels]
            out.append(bar_chart_svg(labels, tag_series, title=f"{main} per tag"))
    out.append(_cases_table(runs, run.id))
    out.append("</body></html>")
    return "\n".join(out)


def _cases_table(runs: EvalRuns, run_id: str) -> str:
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in runs.metric_rows(run_id):
        if row.value is not None:
            per[row.case_key][row.name].append(row.value)
    errors = {r.case_key: r.error for r in runs.results(run_id) if r.error}
    cols = [
        c
        for c in ("fuzzy_match", "fact_recall", "tool_call_accuracy", "ndcg@5", "latency_ms")
        if any(c in v for v in per.values())
    ]
    out = ["<h2>Cases</h2><table><tr><th>case</th>"]
    out.extend(f"<th>{escape(c)}</th>" for c in cols)
    out.append("<th>error</th></tr>")
    for key in sorted(per):
        cells = "".join(
            f"<td>{_fmt(sum(per[key][c]) / len(per[key][c]) if per[key].get(c) else None)}</td>"
            for c in cols
        )
        out.append(f"<tr><td>{escape(key)}</td>{cells}<td>{_fmt(errors.get(key, ''))}</td></tr>")
    out.append("</table>")
    return "".join(out)
