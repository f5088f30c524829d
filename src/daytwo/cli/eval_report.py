"""`daytwo eval report`: a run's metrics, gate verdict and judges' verdicts as text, JSON, HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def report_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (or prefix).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the self-contained HTML report here.")
    ] = None,
    baseline: str | None = typer.Option(None, "--baseline", help="Compare with this run."),
    gate_metric: str | None = typer.Option(
        None,
        "--gate-metric",
        help="Show the release gate's verdict on this metric (or judge:NAME@VERSION).",
    ),
    max_drop: float = typer.Option(0.0, "--max-drop", min=0.0, help="Gate: largest drop."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999),
    trace_url: str | None = typer.Option(
        None,
        "--trace-url",
        help="Link each case to its trace: a URL template with {trace_id} "
        "(e.g. http://phoenix:6006/projects/default/traces/{trace_id}).",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """A run's report: metrics and deltas, gate verdict, judges' verdicts and evidence.

    Printed as text (or --json); --html also writes one self-contained page (inline SVG).
    """
    from daytwo.evals.report import render_html, report_data
    from daytwo.evals.runs import EvalRuns
    from daytwo.exceptions import InputError

    runs = EvalRuns(state.store())
    verdict = None
    if trace_url is not None and "{trace_id}" not in trace_url:
        raise InputError(
            f"--trace-url {trace_url!r} has no {{trace_id}} placeholder",
            hint="e.g. --trace-url 'http://jaeger:16686/trace/{trace_id}'",
        )
    if gate_metric is not None:
        from daytwo.evals.gates import gate

        base = runs.get(baseline) if baseline else runs.previous(runs.get(run_id).id)
        if base is None:
            raise InputError("the gate needs a baseline run", hint="pass --baseline RUN_ID")
        baseline = base.id
        verdict = gate(
            state.store(), candidate=runs.get(run_id).id, baseline=base.id,
            metric=gate_metric, max_drop=max_drop, confidence=confidence,
        )  # fmt: skip
    data = report_data(runs, run_id, baseline, gate=verdict)
    if html is not None:
        text = render_html(runs, run_id, baseline, gate=verdict, trace_url=trace_url)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(text, encoding="utf-8")
    if json_out:
        print_json({**data, "html": str(html) if html else None})
    else:
        _print_report(data)
        if html is not None:
            console.print(f"wrote {html}")


def _print_report(data: dict[str, Any]) -> None:
    run, base = data["run"], data["baseline"]
    console.print(
        f"run {run['id'][:12]} — {run['agent']}@{run['agent_version']} on "
        f"{run['set_name']}@{run['set_version']}"
        + (f"; baseline {base['id'][:12]}" if base else "; no baseline"),
        markup=False,
    )
    table = Table(title="metrics")
    for col in ("metric", "component", "candidate", "baseline", "delta", "missing"):
        table.add_column(col)

    def num(v: Any, signed: bool = False) -> str:
        return "–" if v is None else (f"{v:+.4g}" if signed else f"{v:.4g}")

    for m in data["metrics"]:
        table.add_row(
            m["metric"], m["component"], num(m["candidate"]), num(m["baseline"]),
            num(m["delta"], True), str(m["missing"]),
        )  # fmt: skip
    console.print(table)
    g = data["gate"]
    if g is not None:
        word = "[green]PASS[/]" if g["passed"] else "[red]FAIL: significant drop[/]"
        console.print(
            f"gate on {g['metric']} (max drop {g['max_drop']:g}): {word}; change "
            f"{g['mean_delta']:+.4f}, {g['confidence']:.0%} CI [{g['ci_low']:+.4f}, "
            f"{g['ci_high']:+.4f}] over {g['n']} paired cases"
        )
    for j in data["judges"]:
        line = (
            f"judge {j['judge']} ({j['kind']}, {j['model']}, prompt {j['prompt_sha256'][:12]}): "
            f"{j['cases']} cases, {j['judge_failures']} failures, "
        )
        if j["kind"] == "pointwise":
            line += f"mean score {num(j['mean_score'])}"
        else:
            line += (
                f"vs {str(j['baseline_run'])[:12]}: candidate wins {j['candidate_wins']}, "
                f"baseline wins {j['baseline_wins']}, ties {j['ties']}, "
                f"consistency {num(j['consistency_rate'])}"
            )
        console.print(line, markup=False, soft_wrap=True)
    bad = [
        (c["case"], name, ev)
        for c in data["cases"]
        for name, ev in c["judge_evidence"].items()
        if ev.get("value") is not None and ev["value"] < 1.0 and ev.get("claims")
    ]
    for case, name, ev in bad[:10]:
        for claim in ev["claims"]:
            flag = claim.get("supported", claim.get("relevant"))
            if flag is not True:
                where = f" (passage {claim['passage_rank']})" if "passage_rank" in claim else ""
                verdict = (
                    "failure"
                    if flag is None
                    else "not " + ("supported" if "supported" in claim else "relevant")
                )
                console.print(
                    f"  {case} {name}: {verdict}{where}: {claim['claim']}",
                    markup=False,
                    soft_wrap=True,
                )
