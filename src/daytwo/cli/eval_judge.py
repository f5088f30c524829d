"""`daytwo eval judge`: LLM judges over a stored eval run, every verdict kept."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json, progress_bar

judge_app = typer.Typer(
    help="LLM judges over stored runs: pointwise scores, pairwise in both orders.",
    no_args_is_help=True,
)

MODEL_OPT = typer.Option(
    "local", "--model", help="Judge model: 'local' or an OpenAI-compatible URL#model."
)
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _prepare(judge: str, kind: str) -> Any:
    from daytwo.evals.judging import load_judge_spec
    from daytwo.exceptions import InputError

    spec = load_judge_spec(judge)
    if spec.kind != kind:
        raise InputError(f"judge {spec.name} is {spec.kind}; use `daytwo eval judge {spec.kind}`")
    return spec


@judge_app.command("pointwise")
def pointwise_cmd(
    run_id: str = typer.Argument(..., metavar="RUN", help="Eval run whose answers are scored."),
    judge: str = typer.Option(
        "answer_relevance",
        "--judge",
        help="faithfulness, answer_relevance, correctness, or a judge YAML file.",
    ),
    model: str = MODEL_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Score every case of RUN 1..5 with a rubric judge; the judge and its verdicts are stored."""
    from daytwo.evals.bindings import open_chat_model
    from daytwo.evals.judging import judge_pointwise, register_judge
    from daytwo.evals.runs import EvalRuns

    runs = EvalRuns(state.store())
    runs.get(run_id)
    with ExitStack() as stack:
        chat, label = open_chat_model(model, stack, settings=state.settings())
        spec = _prepare(judge, "pointwise").with_model(label)
        register_judge(runs, spec)  # a changed prompt is refused before any model call
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(f"{spec.name}@{spec.version} on {run_id[:12]}", total=None)
            out = judge_pointwise(
                runs, chat, spec, run_id,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    if json_out:
        print_json(out)
        return
    table = Table(title=f"{out['judge']} on run {run_id[:12]} ({label})")
    for col in ("case", "score 1-5", "parse"):
        table.add_column(col)
    for r in out["results"]:
        table.add_row(r["case"], str(r["raw_score"] or "failure"), r["parse_status"])
    console.print(table)
    mean = out["mean_score"]
    console.print(
        f"mean {mean:.3f} (0..1) over {out['cases'] - out['judge_failures']} cases; "
        f"{out['judge_failures']} judge failures"
        if mean is not None
        else f"no case could be scored; {out['judge_failures']} judge failures"
    )


@judge_app.command("pairwise")
def pairwise_cmd(
    candidate: str = typer.Option(..., "--candidate", help="Candidate run id."),
    baseline: str = typer.Option(..., "--baseline", help="Baseline run id."),
    judge: str = typer.Option("pairwise", "--judge", help="pairwise or a judge YAML file."),
    model: str = MODEL_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Compare both runs' answers case by case, asked in both orders; only agreement counts."""
    from daytwo.evals.bindings import open_chat_model
    from daytwo.evals.judging import judge_pairwise, register_judge
    from daytwo.evals.runs import EvalRuns

    runs = EvalRuns(state.store())
    runs.get(candidate)
    runs.get(baseline)
    with ExitStack() as stack:
        chat, label = open_chat_model(model, stack, settings=state.settings())
        spec = _prepare(judge, "pairwise").with_model(label)
        register_judge(runs, spec)
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(f"{spec.name}@{spec.version}", total=None)
            out = judge_pairwise(
                runs, chat, spec, candidate, baseline,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    if json_out:
        print_json(out)
        return
    table = Table(title=f"{out['judge']}: candidate {candidate[:12]} vs baseline {baseline[:12]}")
    for col in ("case", "verdict", "candidate shown first", "baseline shown first"):
        table.add_column(col)
    for r in out["results"]:
        table.add_row(r["case"], r["verdict"], str(r["candidate_first"]), str(r["baseline_first"]))
    console.print(table)
    console.print(
        f"candidate wins {out['candidate_wins']}, baseline wins {out['baseline_wins']}, "
        f"ties {out['ties']}, judge failures {out['judge_failures']}; "
        f"consistency across orders {out['consistency_rate']:.0%}"
    )


@judge_app.command("list")
def list_cmd(json_out: bool = JSON_OPT) -> None:
    """Stored judge prompt versions: verdicts and how many of them humans labelled."""
    from daytwo.evals.annotations import judges

    rows = judges(state.store(), None)
    if json_out:
        print_json([j.as_dict() for j in rows])
        return
    if not rows:
        console.print("no judge has run yet (`daytwo eval judge pointwise RUN`)")
        return
    table = Table(title="Judge prompt versions")
    for col in ("judge", "kind", "model", "verdicts", "labelled", "prompt sha256"):
        table.add_column(col)
    for j in rows:
        table.add_row(j.ref, j.kind, j.model, str(j.verdicts), str(j.annotated), j.prompt_hash[:12])
    console.print(table)


@judge_app.command("agreement")
def agreement_cmd(
    judge: str = typer.Argument(..., metavar="NAME@VERSION", help="A stored judge version."),
    json_out: bool = JSON_OPT,
) -> None:
    """Cohen's kappa between human reviewers and between the judge and the humans."""
    from daytwo.evals.annotations import agreement, find_judge

    store = state.store()
    out = agreement(store, find_judge(store, judge), None)
    if json_out:
        print_json(out)
        return

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    table = Table(title=f"{out['judge']}: {out['labels']} labels on {out['labelled_items']} "
                  f"of {out['verdicts']} verdicts")  # fmt: skip
    for col in ("between", "items", "agreement", "kappa"):
        table.add_column(col)
    rev, jh = out["reviewers"], out["judge_vs_humans"]
    table.add_row("reviewers", str(rev["items"]), fmt(rev["agreement"]), fmt(rev["kappa"]))
    for p in rev["by_pair"]:
        table.add_row(" · ".join(p["reviewers"]), str(p["items"]), fmt(p["agreement"]),
                      fmt(p["kappa"]))  # fmt: skip
    table.add_row("judge vs humans", str(jh["items"]), fmt(jh["agreement"]), fmt(jh["kappa"]))
    console.print(table)
