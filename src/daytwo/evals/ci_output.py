"""A gate's verdict in the shapes CI systems read: JUnit XML and a Markdown PR comment.

``daytwo eval gate ... --junit gate.xml --markdown comment.md`` writes both; the JUnit
file holds one test case per gate (failing when the drop is significant) and the
Markdown body a verdict line, the figures and the cases that dropped most.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from daytwo.evals.metrics import LOWER_IS_BETTER

if TYPE_CHECKING:
    from daytwo.evals.gates import GateResult
    from daytwo.evals.runs import EvalRuns

__all__ = ["case_changes", "junit_xml", "markdown_comment"]


def case_changes(runs: EvalRuns, result: GateResult) -> list[tuple[str, float, float]]:
    """``(case, baseline, candidate)`` of the gated metric for cases in both runs, worst first."""
    from daytwo.evals.verdicts import JUDGE_PREFIX, judge_case_values

    if result.metric.startswith(JUDGE_PREFIX):
        cand, base = judge_case_values(runs.store, result.metric, result.candidate, result.baseline)
    else:
        cand = runs.case_values(result.candidate, result.metric)
        base = runs.case_values(result.baseline, result.metric)
    rows = [(key, base[key], cand[key]) for key in sorted(set(cand) & set(base))]
    sign = -1.0 if result.metric in LOWER_IS_BETTER else 1.0
    return sorted(rows, key=lambda r: sign * (r[2] - r[1]))


def _summary(result: GateResult) -> str:
    st = result.stats
    return (
        f"{result.metric}: baseline {st.baseline_mean:.4f}, candidate {st.candidate_mean:.4f}, "
        f"change {st.mean_delta:+.4f} (better > 0), {st.confidence:.0%} CI "
        f"[{st.ci_low:+.4f}, {st.ci_high:+.4f}], {st.n} paired cases, "
        f"largest drop tolerated {result.max_drop:g}"
    )


def junit_xml(result: GateResult, changes: list[tuple[str, float, float]] | None = None) -> str:
    """A JUnit XML report: one test case, failed when the gate fails."""
    suite = ET.Element(
        "testsuite",
        name="daytwo eval gate",
        tests="1",
        failures="0" if result.passed else "1",
        errors="0",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in result.as_dict().items():
        if isinstance(value, str | int | float | bool):
            ET.SubElement(props, "property", name=name, value=str(value))
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"daytwo.eval.gate.{result.metric}",
        name=f"{result.metric} of {result.candidate[:12]} vs {result.baseline[:12]}",
    )
    if not result.passed:
        failure = ET.SubElement(case, "failure", message="significant drop", type="EvalGateFailure")
        failure.text = _summary(result)
    out = ET.SubElement(case, "system-out")
    lines = [_summary(result)]
    for key, before, after in (changes or [])[:20]:
        lines.append(f"{key}: {before:.4f} -> {after:.4f}")
    out.text = "\n".join(lines)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_comment(
    result: GateResult,
    changes: list[tuple[str, float, float]] | None = None,
    *,
    report_url: str | None = None,
    top: int = 10,
) -> str:
    """A PR comment body: verdict, figures, the cases that dropped most."""
    st = result.stats
    icon = "✅" if result.passed else "❌"
    verdict = "passed" if result.passed else "failed: significant drop"
    lines = [
        f"### {icon} daytwo eval gate {verdict}",
        "",
        f"Metric **{_md(result.metric)}**, largest drop tolerated {result.max_drop:g}, "
        f"{st.n} paired cases.",
        "",
        "| | value |",
        "|---|---|",
        f"| baseline `{result.baseline[:12]}` | {st.baseline_mean:.4f} |",
        f"| candidate `{result.candidate[:12]}` | {st.candidate_mean:.4f} |",
        f"| change (better > 0) | {st.mean_delta:+.4f} |",
        f"| {st.confidence:.0%} confidence interval | [{st.ci_low:+.4f}, {st.ci_high:+.4f}] |",
    ]
    if result.missing_in_candidate:
        lines.append(f"| cases missing in the candidate | {len(result.missing_in_candidate)} |")
    dropped = [
        c
        for c in (changes or [])
        if (c[2] - c[1]) * (-1 if result.metric in LOWER_IS_BETTER else 1) < 0
    ]
    if dropped:
        lines += ["", f"<details><summary>{len(dropped)} cases got worse</summary>", ""]
        lines += ["| case | baseline | candidate |", "|---|---|---|"]
        lines += [
            f"| `{_md(key)}` | {before:.4f} | {after:.4f} |" for key, before, after in dropped[:top]
        ]
        lines += ["", "</details>"]
    if report_url:
        lines += ["", f"[Full report]({report_url})"]
    return "\n".join(lines) + "\n"
