"""``daytwo eval report RUN --html OUT``: one self-contained HTML page (inline SVG, no CDN).

What a reviewer needs to act on a run: the gate's verdict and confidence interval,
tables per metric (candidate vs baseline) and per failure-mode tag with bar charts
drawn as inline SVG, and every case with its input, expected and actual output (the
baseline's too), its metrics and their change against the baseline, its latency in
readable units, and a link to its trace.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from daytwo.evals.metrics import LOWER_IS_BETTER
from daytwo.evals.runs import EvalRuns, RunInfo
from daytwo.evals.verdicts import judge_evidence, judge_verdicts
from daytwo.store.tables.evals import EvalCase

if TYPE_CHECKING:
    from daytwo.evals.gates import GateResult

__all__ = ["bar_chart_svg", "human_ms", "per_case_means", "render_html", "report_data"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.bad{color:#b00020}.good{color:#0a7d28}.muted{color:#777}
td.text{text-align:left;max-width:22rem;white-space:pre-wrap;word-break:break-word;font-size:.85rem}
.verdict{padding:.6rem 1rem;border-radius:4px;display:inline-block;font-weight:bold}
.pass{background:#e3f4e8;color:#0a7d28}.fail{background:#fbe3e6;color:#b00020}
"""


def human_ms(ms: float | None) -> str:
    """A latency a person reads at a glance: ``812 ms``, ``22.6 s``, ``3 min 05 s``."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


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


def _fmt(v: Any, name: str = "") -> str:
    if v is None:
        return '<span class="muted">–</span>'
    if isinstance(v, float) and _is_latency(name):
        return escape(human_ms(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def _is_latency(name: str) -> bool:
    return "latency" in name or name.endswith("_ms")


def _signed(v: float | None, name: str) -> str:
    if v is None:
        return '<span class="muted">–</span>'
    if _is_latency(name):
        return ("+" if v >= 0 else "−") + escape(human_ms(abs(v)))
    return f"{v:+.4g}"


def _delta_class(delta: float | None, name: str) -> str:
    if not delta:
        return ""
    better = delta < 0 if name in LOWER_IS_BETTER else delta > 0
    return "good" if better else "bad"


def _gate_box(result: GateResult) -> str:
    st = result.stats
    verdict = "PASS" if result.passed else "FAIL: significant drop"
    return (
        f"<h2>Release gate</h2><p class='verdict {'pass' if result.passed else 'fail'}'>"
        f"{escape(verdict)}</p><p>metric <b>{escape(result.metric)}</b>, largest drop "
        f"tolerated {result.max_drop:g}: change {st.mean_delta:+.4f} (better &gt; 0), "
        f"{st.confidence:.0%} confidence interval [{st.ci_low:+.4f}, {st.ci_high:+.4f}] over "
        f"{st.n} paired cases (baseline {st.baseline_mean:.4f}, candidate "
        f"{st.candidate_mean:.4f}).</p>"
    )


def render_html(
    runs: EvalRuns,
    run_id: str,
    baseline_id: str | None = None,
    *,
    gate: GateResult | None = None,
    trace_url: str | None = None,
) -> str:
    """The report of a run, compared with ``baseline_id`` (default: the previous run of its set).

    ``gate`` adds the release gate's verdict and interval; ``trace_url`` (a template with
    ``{trace_id}``, e.g. a Phoenix or Jaeger trace URL) links each case to its trace.
    """
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
    if gate is not None:
        out.append(_gate_box(gate))
    out.append(_judges_html(judge_verdicts(runs.store, run.id)))
    out.append("<h2>Metrics</h2><table><tr><th>metric</th><th>component</th><th>candidate</th>")
    out.append("<th>baseline</th><th>delta</th><th>cases</th><th>missing</th></tr>")
    for n in names:
        c = cm[n].get("mean")
        b = bm.get(n, {}).get("mean") if bm else None
        delta = c - b if c is not None and b is not None else None
        out.append(
            f"<tr><td>{escape(n)}</td><td>{escape(cm[n]['component'])}</td><td>{_fmt(c, n)}</td>"
            f"<td>{_fmt(b, n)}</td><td class='{_delta_class(delta, n)}'>{_signed(delta, n)}</td>"
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
    out.append(_cases_table(runs, run.id, base.id if base else None, trace_url))
    out.append("</body></html>")
    return "\n".join(out)


def _judges_html(judges: list[dict[str, Any]]) -> str:
    """Stored verdicts of `daytwo eval judge` on the run: one table per judge."""
    if not judges:
        return ""
    out = ["<h2>Judges</h2>"]
    for j in judges:
        head = (
            f"<h3>{escape(j['judge'])} ({escape(j['kind'])})</h3><p>model "
            f"<code>{escape(j['model'])}</code>, prompt sha256 "
            f"<code>{escape(j['prompt_sha256'][:12])}</code>, {j['cases']} cases, "
            f"{j['judge_failures']} judge failures; "
        )
        if j["kind"] == "pointwise":
            mean = j["mean_score"]
            out.append(head + f"mean score {_fmt(mean)} (0..1).</p>")
            cols = ("case", "verdict (1–5)", "score", "parse")
            rows = [(c["case"], c["verdict"], _fmt(c["score"]), c["parse_status"])
                    for c in j["results"]]  # fmt: skip
        else:
            rate = j["consistency_rate"]
            out.append(
                head + f"against baseline <code>{escape(str(j['baseline_run'])[:12])}</code>: "
                f"candidate wins {j['candidate_wins']}, baseline wins {j['baseline_wins']}, "
                f"ties {j['ties']}, consistent across both orders {_fmt(rate)}.</p>"
            )
            cols = ("case", "verdict", "candidate shown first", "baseline shown first")
            rows = [(c["case"], c["verdict"], str(c.get("candidate_first")),
                     str(c.get("baseline_first"))) for c in j["results"]]  # fmt: skip
        out.append("<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr>")
        for r in rows:
            cells = "".join(
                f"<td>{v if v.startswith('<span') else escape(v)}</td>" for v in map(str, r)
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    return "".join(out)


def _evidence_html(evidence: dict[str, dict[str, Any]]) -> str:
    """The judge's evidence of a case's reference-free metrics, folded."""
    if not evidence:
        return '<span class="muted">–</span>'
    parts = []
    for name, ev in sorted(evidence.items()):
        items = []
        for c in ev.get("claims", []):
            flag = c.get("supported", c.get("relevant"))
            mark = {True: "✔", False: "✘", None: "failure"}.get(flag, "?")
            where = (
                f" — passage {c['passage_rank']}"
                + (f" ({escape(str(c['passage_id']))})" if c.get("passage_id") else "")
                + f": “{escape(c.get('passage', ''))}”"
                if "passage_rank" in c
                else ""
            )
            items.append(f"<li>{mark} {escape(c['claim'])}{where}</li>")
        for p in ev.get("passages", []) if name == "context_precision" else []:
            mark = {True: "relevant", False: "not relevant", None: "failure"}[p["relevant"]]
            pid = f" ({escape(str(p['passage_id']))})" if p.get("passage_id") else ""
            items.append(f"<li>#{p['rank']}{pid} {mark}: “{escape(p.get('passage', ''))}”</li>")
        why = f" <i>{escape(ev['reason'])}</i>" if ev.get("reason") else ""
        parts.append(
            f"<details><summary>{escape(name)} {_fmt(ev.get('value'))}{why}</summary>"
            f"<ul>{''.join(items)}</ul></details>"
        )
    return "".join(parts)


def report_data(
    runs: EvalRuns,
    run_id: str,
    baseline_id: str | None = None,
    *,
    gate: GateResult | None = None,
) -> dict[str, Any]:
    """What the report shows, as data (``daytwo eval report --json`` and the text view)."""
    run = runs.get(run_id)
    base: RunInfo | None = runs.get(baseline_id) if baseline_id else runs.previous(run.id)
    cm = run.summary.get("metrics", {})
    bm = base.summary.get("metrics", {}) if base else {}
    metrics = []
    for n in sorted(cm, key=lambda n: (cm[n]["component"], n)):
        c, b = cm[n].get("mean"), bm.get(n, {}).get("mean")
        metrics.append(
            {
                "metric": n,
                "component": cm[n]["component"],
                "candidate": c,
                "baseline": b,
                "delta": c - b if c is not None and b is not None else None,
                "cases": cm[n].get("cases", 0),
                "missing": cm[n].get("missing", 0),
            }
        )
    evidence = judge_evidence(runs, run.id)
    cand = per_case_means(runs, run.id)
    before = per_case_means(runs, base.id) if base else {}
    cases = [
        {
            "case": key,
            "metrics": cand[key],
            "deltas": {
                m: v - before[key][m] for m, v in cand[key].items() if m in before.get(key, {})
            },
            "judge_evidence": evidence.get(key, {}),
        }
        for key in sorted(cand)
    ]
    return {
        "run": run.as_dict(),
        "baseline": base.as_dict() if base else None,
        "gate": gate.as_dict() if gate else None,
        "metrics": metrics,
        "judges": judge_verdicts(runs.store, run.id),
        "cases": cases,
    }


_CASE_METRICS = (
    "fuzzy_match",
    "exact_match",
    "fact_recall",
    "tool_call_accuracy",
    "ndcg@5",
    "faithfulness",
    "answer_relevancy",
    "context_precision",
    "context_recall",
    "semantic_similarity",
)


def per_case_means(runs: EvalRuns, run_id: str) -> dict[str, dict[str, float]]:
    """Mean of each metric per case (over repeats)."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in runs.metric_rows(run_id):
        if row.value is not None:
            per[row.case_key][row.name].append(row.value)
    return {k: {m: sum(v) / len(v) for m, v in ms.items()} for k, ms in per.items()}


def _text(value: Any, limit: int = 600) -> str:
    if value is None or value == "":
        return '<span class="muted">–</span>'
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > limit:
        return f"<details><summary>{escape(text[:limit])}…</summary>{escape(text)}</details>"
    return escape(text)


def _cases_table(
    runs: EvalRuns, run_id: str, baseline_id: str | None, trace_url: str | None
) -> str:
    cand = per_case_means(runs, run_id)
    base = per_case_means(runs, baseline_id) if baseline_id else {}
    results = {r.case_key: r for r in runs.results(run_id) if r.repeat == 0}
    base_results = (
        {r.case_key: r for r in runs.results(baseline_id) if r.repeat == 0} if baseline_id else {}
    )
    with runs.store.session() as s:
        ids = [r.case_id for r in results.values()]
        cases = {
            c.id: dict(c.data) for c in s.scalars(select(EvalCase).where(EvalCase.id.in_(ids)))
        }
    cols = [c for c in _CASE_METRICS if any(c in v for v in cand.values())]
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    evidence = judge_evidence(runs, run_id)
    if evidence:
        head += "<th>judge evidence</th>"
    out = [
        "<h2>Cases</h2><p>Each metric cell shows the candidate's value and, below it, the "
        "change against the baseline.</p><table><tr><th>case</th><th>input</th>"
        f"<th>expected</th><th>actual</th><th>baseline actual</th>{head}"
        "<th>latency</th><th>error</th><th>trace</th></tr>"
    ]
    for key in sorted(set(cand) | set(results)):
        res = results.get(key)
        data = cases.get(res.case_id, {}) if res is not None else {}
        expected: Any = data.get("expected_output")
        if expected is None and data.get("expected_tool_calls"):
            expected = data["expected_tool_calls"]
        actual = (res.output or {}).get("output") if res is not None else None
        old = base_results.get(key)
        cells = []
        for c in cols:
            value = cand.get(key, {}).get(c)
            before = base.get(key, {}).get(c)
            delta = value - before if value is not None and before is not None else None
            cells.append(
                f"<td>{_fmt(value, c)}<br><small class='{_delta_class(delta, c)}'>"
                f"{_signed(delta, c) if baseline_id else ''}</small></td>"
            )
        latency = cand.get(key, {}).get("latency_ms")
        old_latency = base.get(key, {}).get("latency_ms")
        lat_delta = (
            latency - old_latency if latency is not None and old_latency is not None else None
        )
        trace_id = res.trace_id if res is not None else None
        if trace_id and trace_url:
            link = escape(trace_url.replace("{trace_id}", trace_id), quote=True)
            trace_cell = f"<a href='{link}'>{escape(trace_id[:12])}</a>"
        else:
            trace_cell = f"<code>{escape(trace_id[:16])}</code>" if trace_id else _fmt(None)
        out.append(
            f"<tr><td>{escape(key)}</td><td class='text'>{_text(data.get('input'))}</td>"
            f"<td class='text'>{_text(expected)}</td><td class='text'>{_text(actual)}</td>"
            f"<td class='text'>{_text((old.output or {}).get('output') if old else None)}</td>"
            f"{''.join(cells)}"
            + (f"<td class='text'>{_evidence_html(evidence.get(key, {}))}</td>" if evidence else "")
            + f"<td>{escape(human_ms(latency))}<br><small class='"
            f"{_delta_class(lat_delta, 'latency_ms')}'>"
            f"{_signed(lat_delta, 'latency_ms') if lat_delta is not None else ''}</small></td>"
            f"<td class='text'>{_text(res.error if res is not None else None)}</td>"
            f"<td>{trace_cell}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)
