"""`daytwo eval`: golden sets, runs, gates, drift watch, synthesis, review, promotion, reports."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json, progress_bar
from daytwo.cli.eval_judge import judge_app
from daytwo.cli.eval_report import report_cmd


def _agents(store: Any) -> Any:
    """Registered agents run through the durable runtime (the layer above evals)."""
    from daytwo.runtime.eval_runner import agent_runner_factory

    return agent_runner_factory(state.settings(), store)


app = typer.Typer(
    help="Continuous evaluation: golden sets, runs, judges, gates.", no_args_is_help=True
)
sets_app = typer.Typer(help="Versioned golden sets.", no_args_is_help=True)
app.add_typer(sets_app, name="sets")
app.add_typer(judge_app, name="judge")

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _sets() -> Any:
    from daytwo.evals.datasets import GoldenSets

    return GoldenSets(state.store())


def _runs() -> Any:
    from daytwo.evals.runs import EvalRuns

    return EvalRuns(state.store())


# -- sets ---------------------------------------------------------------------------------


@sets_app.command("create")
def sets_create(
    name: str = typer.Argument(..., help="Name of the new set."),
    description: str = typer.Option("", "--description", "-d", help="What the set covers."),
    json_out: bool = JSON_OPT,
) -> None:
    """Create an empty golden set."""
    _sets().create(name, description)
    if json_out:
        print_json({"set": name, "created": True})
    else:
        console.print(f"created golden set {name}")


@sets_app.command("list")
def sets_list(json_out: bool = JSON_OPT) -> None:
    """List the golden sets and their latest versions."""
    gs = _sets()
    rows = []
    for name in gs.names():
        versions = gs.versions(name)
        last = versions[-1] if versions else None
        rows.append(
            {
                "set": name,
                "version": last.version if last else 0,
                "cases": last.case_count if last else 0,
            }
        )
    if json_out:
        print_json(rows)
        return
    table = Table(title="golden sets")
    for col in ("set", "latest version", "cases"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["set"], str(r["version"]), str(r["cases"]))
    console.print(table)


@sets_app.command("add")
def sets_add(
    name: str = typer.Argument(..., help="Set to add the case to."),
    input_text: str = typer.Option(..., "--input", "-i", help="The user input."),
    expected: str | None = typer.Option(None, "--expected", "-e", help="Expected output."),
    fact: Annotated[list[str] | None, typer.Option("--fact", help="A reference fact.")] = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="A relevant doc id.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A failure-mode tag.")
    ] = None,
    key: str | None = typer.Option(None, "--key", help="Stable case key (default from input)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Add (or update by key) one case: writes a new version."""
    from pydantic import ValidationError

    from daytwo.evals.cases import Case
    from daytwo.exceptions import InputError

    try:
        case = Case(
            key=key,
            input=input_text,
            expected_output=expected,
            reference_facts=fact or [],
            relevant_doc_ids=doc or [],
            tags=tag or [],
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(
            f"invalid case: {err['loc'][0]}: {err['msg']}", hint="fix --input"
        ) from exc
    info = _sets().add(name, [case], note="add " + case.resolved_key())
    _print_version(info, json_out)


def _print_version(info: Any, json_out: bool) -> None:
    if json_out:
        print_json(info.as_dict())
    elif info.changed:
        console.print(f"{info.set_name}@{info.version}: {info.case_count} cases")
    else:
        console.print(f"{info.set_name}@{info.version} unchanged ({info.case_count} cases)")


@sets_app.command("import")
def sets_import(
    name: Annotated[str, typer.Argument(help="Set to import into (created when missing).")],
    file: Annotated[Path, typer.Argument(help="JSONL file, one case per line.")],
    replace: bool = typer.Option(
        False, "--replace", help="The new version holds exactly the file's cases."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Import cases from JSONL as a new version (a bad line is named, nothing is written)."""
    info = _sets().import_jsonl(name, file, replace=replace)
    _print_version(info, json_out)


@sets_app.command("export")
def sets_export(
    ref: str = typer.Argument(..., help="SET or SET@VERSION."),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here, not stdout.")] = None,
) -> None:
    """Export a version as JSONL."""
    import sys

    from daytwo.evals.cases import cases_to_jsonl
    from daytwo.evals.datasets import parse_set_ref

    name, version = parse_set_ref(ref)
    text = cases_to_jsonl(_sets().export(name, version))
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {text.count(chr(10))} cases to {out}")
    else:
        sys.stdout.write(text)


@sets_app.command("versions")
def sets_versions(
    name: str = typer.Argument(..., help="Set name."), json_out: bool = JSON_OPT
) -> None:
    """List every version of a set."""
    versions = _sets().versions(name)
    if json_out:
        print_json([v.as_dict() for v in versions])
        return
    table = Table(title=f"versions of {name}")
    for col in ("version", "cases", "created", "note", "hash"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            str(v.version), str(v.case_count), v.created_at.isoformat(timespec="seconds"),
            v.note, v.content_hash[:12],
        )  # fmt: skip
    console.print(table)


@sets_app.command("diff")
def sets_diff(
    name: str = typer.Argument(..., help="Set name."),
    old: int = typer.Argument(..., help="Old version."),
    new: int | None = typer.Argument(None, help="New version (default latest)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Show the cases added, removed and changed between two versions."""
    d = _sets().diff(name, old, new)
    if json_out:
        print_json(d.as_dict())
        return
    console.print(f"{name}: v{d.old} → v{d.new}, {d.unchanged} unchanged")
    for label, keys, colour in (
        ("+", d.added, "green"),
        ("-", d.removed, "red"),
        ("~", d.changed, "yellow"),
    ):
        for k in keys:
            console.print(f"[{colour}]{label} {k}[/]")


# -- runs ---------------------------------------------------------------------------------


@app.command("run")
def run_cmd(
    set_ref: str = typer.Option(..., "--set", "-s", help="SET or SET@VERSION."),
    agent: str | None = typer.Option(
        None, "--agent", "-a", help="AGENT@VERSION, model:local, python:mod:attr."
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help="An external agent: http(s)://URL, module:function, or gateway:MODEL.",
    ),
    request: str | None = typer.Option(
        None,
        "--request",
        help='HTTP target: JSON body template, e.g. \'{"question": "{{input}}"}\'.',
    ),
    response: str | None = typer.Option(
        None, "--response", help="HTTP target: JSONPath of the answer (default $.output)."
    ),
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="HTTP target: 'Name: value'.")
    ] = None,
    url: str | None = typer.Option(
        None, "--url", help="gateway target: the daytwo server (default DAYTWO_URL)."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="DAYTWO_API_KEY", help="gateway target: a daytwo API key."
    ),
    trace_wait: float | None = typer.Option(
        None,
        "--trace-wait",
        min=0,
        max=600,
        help="Seconds to wait for an external agent's spans (default: 5 for HTTP, 3 gateway).",
    ),
    repeats: int = typer.Option(1, "--repeats", "-k", min=1, max=100, help="Runs per case."),
    concurrency: int = typer.Option(
        2, "--concurrency", "-c", min=1, max=64, help="Parallel cases."
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="Model for LLM judges: 'local' or an OpenAI-compatible URL#model."
    ),
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics",
            help="Reference-free metrics, comma-separated or repeated: faithfulness, "
            "answer_relevancy, context_precision, context_recall (need --judge), "
            "semantic_similarity (the embedder). Default with --judge: the four judge metrics.",
        ),
    ] = None,
    k: int = typer.Option(5, "--k", min=1, help="Cut-off of retrieval metrics."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run a golden set version through an agent version and store every metric."""
    from daytwo.evals.bindings import open_chat_model, resolve_runner
    from daytwo.evals.scoring import Scorer, resolve_metrics
    from daytwo.exceptions import InputError

    chosen = [x.strip() for m in metrics or [] for x in m.split(",") if x.strip()] or None
    resolve_metrics(chosen, judge=judge is not None)  # bad names fail before any work
    if (agent is None) == (target is None):
        raise InputError(
            "pass exactly one of --agent and --target",
            hint="--agent for daytwo agents and models, --target for an external agent",
        )
    store = state.store()
    runs = _runs()
    info = runs.sets.resolve(set_ref)  # unknown set/version fails before anything starts
    _trace_with_prices(store)
    with ExitStack() as stack:
        if target is not None:
            runner = _target(target, request, response, header, url, api_key, stack)
            if trace_wait is not None:
                runner.trace_wait_s = trace_wait  # type: ignore[attr-defined]
            agent = target
        else:
            assert agent is not None
            runner = resolve_runner(agent, stack, settings=state.settings(), agents=_agents(store))
        embedder = _embedder() if chosen and "semantic_similarity" in chosen else None
        judge_model = open_chat_model(judge, stack, settings=state.settings())[0] if judge else None
        scorer = Scorer(k=k, judge_model=judge_model, metrics=chosen, embedder=embedder)
        total = info.case_count * repeats
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(
                f"{runner.name}@{runner.version} on {info.set_name}@{info.version}", total=total
            )
            run = runs.run(
                runner,
                f"{info.set_name}@{info.version}",
                repeats=repeats,
                concurrency=concurrency,
                scorer=scorer,
                progress=lambda done, _t: bar.update(task, completed=done),
                config={
                    "agent_ref": agent,
                    "judge": judge,
                    "k": k,
                    "concurrency": concurrency,
                    "metrics": scorer.metrics,
                },
            )
    _print_run(run, json_out)


def _embedder() -> Any:
    """The configured embedder (semantic similarity); a missing model is one clear error."""
    from daytwo.exceptions import ConfigError
    from daytwo.knowledge.embedders import get_embedder

    name = state.settings().embedder
    embedder = get_embedder(name)
    try:
        embedder.embed(["probe"])
    except Exception as exc:
        raise ConfigError(
            f"embedder {name!r} does not load: {exc}",
            hint="install it (daytwo doctor names the package) or set DAYTWO_EMBEDDER",
        ) from exc
    return embedder


def _target(
    spec: str,
    request: str | None,
    response: str | None,
    header: list[str] | None,
    url: str | None,
    api_key: str | None,
    stack: ExitStack,
) -> Any:
    """The runner of an external agent (``daytwo.evals.targets``), closed with ``stack``."""
    import os

    from daytwo.evals.targets import resolve_target
    from daytwo.exceptions import InputError

    headers: dict[str, str] = {}
    for h in header or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise InputError(f"header {h!r} is not 'Name: value'", hint="e.g. -H 'X-Team: a'")
        headers[name.strip()] = value.strip()
    runner = resolve_target(
        spec,
        request=request,
        response=response,
        headers=headers,
        url=url or os.environ.get("DAYTWO_URL"),
        api_key=api_key,
    )
    close = getattr(runner, "close", None)
    if close is not None:
        stack.callback(close)
    return runner


def _trace_with_prices(store: Any) -> None:
    """Store spans, priced as they land: case costs are read from the trace."""
    from daytwo.models.profiles import PriceBook, load_profiles
    from daytwo.tracing import setup_tracing

    settings = state.settings()
    setup_tracing(store, settings, prices=PriceBook(load_profiles(settings)))


def _print_run(run: Any, json_out: bool) -> None:
    if json_out:
        print_json(run.as_dict())
        return
    s = run.summary
    console.print(
        f"run {run.id} — {run.agent}@{run.agent_version} on {run.set_name}@{run.set_version}: "
        f"{s.get('cases', 0)} cases × {run.repeats}, {s.get('errors', 0)} errors, {run.status}"
    )
    table = Table()
    for col in ("component", "metric", "mean", "cases", "missing"):
        table.add_column(col)
    for name, m in sorted(s.get("metrics", {}).items(), key=lambda x: (x[1]["component"], x[0])):
        mean = "–" if m["mean"] is None else f"{m['mean']:.4g}"
        table.add_row(m["component"], name, mean, str(m["cases"]), str(m.get("missing", 0)))
    console.print(table)


@app.command("runs")
def runs_cmd(
    agent: str | None = typer.Option(None, "--agent", help="Only this agent."),
    set_name: str | None = typer.Option(None, "--set", help="Only this set."),
    json_out: bool = JSON_OPT,
) -> None:
    """List eval runs, newest first."""
    rows = _runs().list_runs(agent=agent, set_name=set_name)
    if json_out:
        print_json([r.as_dict() for r in rows])
        return
    table = Table(title="eval runs")
    for col in ("run", "kind", "agent", "set", "status", "cases", "started"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.id[:12], r.kind, f"{r.agent}@{r.agent_version}", f"{r.set_name}@{r.set_version}",
            r.status, str(r.summary.get("cases", r.summary.get("runs", ""))), r.started_at[:19],
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show_cmd(
    run_id: str = typer.Argument(..., help="Run id (or prefix)."),
    cases: bool = typer.Option(False, "--cases", help="Also list every case result."),
    json_out: bool = JSON_OPT,
) -> None:
    """Show a run's metrics (and its case results)."""
    runs = _runs()
    run = runs.get(run_id)
    results = runs.results(run.id) if cases else []
    if json_out:
        data = run.as_dict()
        if cases:
            data["results"] = [
                {
                    "id": r.id, "case": r.case_key, "repeat": r.repeat, "output": r.output,
                    "error": r.error, "latency_ms": r.latency_ms,
                }
                for r in results
            ]  # fmt: skip
        print_json(data)
        return
    _print_run(run, False)
    for r in results:
        out = (r.output or {}).get("output")
        console.print(f"{r.id[:12]} {r.case_key} #{r.repeat}: {r.error or out}", markup=False)


# -- gates, watch -------------------------------------------------------------------------


@app.command("gate")
def gate_cmd(
    candidate: str = typer.Option(..., "--candidate", help="Candidate run id."),
    baseline: str = typer.Option(..., "--baseline", help="Baseline run id."),
    metric: str = typer.Option(..., "--metric", "-m", help="Metric to gate on."),
    max_drop: float = typer.Option(0.0, "--max-drop", min=0.0, help="Largest drop tolerated."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write the verdict as JUnit XML (CI test reports)."),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", help="Also write a Markdown PR comment body with the verdict."),
    ] = None,
    report_url: str | None = typer.Option(
        None, "--report-url", help="Link the Markdown comment to the full HTML report."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Paired bootstrap gate: exit 1 when the candidate is significantly worse than allowed."""
    from daytwo.evals.ci_output import case_changes, junit_xml, markdown_comment
    from daytwo.evals.gates import gate

    result = gate(
        state.store(), candidate=candidate, baseline=baseline, metric=metric,
        max_drop=max_drop, confidence=confidence, seed=seed,
    )  # fmt: skip
    if junit is not None or markdown is not None:
        changes = case_changes(_runs(), result)
        for path, text in (
            (junit, junit_xml(result, changes)),
            (markdown, markdown_comment(result, changes, report_url=report_url)),
        ):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if json_out:
        print_json(result.as_dict())
    else:
        st = result.stats
        table = Table(title=f"gate on {metric} (max drop {max_drop})")
        for col in ("", "mean"):
            table.add_column(col)
        table.add_row(f"baseline {baseline[:12]}", f"{st.baseline_mean:.4f}")
        table.add_row(f"candidate {candidate[:12]}", f"{st.candidate_mean:.4f}")
        table.add_row("change (better > 0)", f"{st.mean_delta:+.4f}")
        table.add_row(f"{st.confidence:.0%} CI", f"[{st.ci_low:+.4f}, {st.ci_high:+.4f}]")
        table.add_row("paired cases", str(st.n))
        console.print(table)
        verdict = "[green]PASS[/]" if result.passed else "[red]FAIL: significant drop[/]"
        console.print(f"verdict: {verdict}")
    raise typer.Exit(result.exit_code)


@app.command("watch")
def watch_cmd(
    agent: str = typer.Option(..., "--agent", help="Agent name as recorded on its runs."),
    set_name: str = typer.Option(..., "--set", help="Set name."),
    metric: str = typer.Option(..., "--metric", "-m", help="Metric to watch."),
    window: int = typer.Option(3, "--window", min=1, help="Recent runs compared."),
    baseline_window: int = typer.Option(10, "--baseline-window", min=1, help="Runs before them."),
    min_delta: float = typer.Option(0.0, "--min-delta", min=0.0, help="Ignore smaller shifts."),
    json_out: bool = JSON_OPT,
) -> None:
    """Drift alert: compare a metric's recent window with its baseline; exit 1 on an alert."""
    from daytwo.evals.gates import watch

    res = watch(
        state.store(), agent=agent, set_name=set_name, metric=metric, window=window,
        baseline_window=baseline_window, min_delta=min_delta,
    )  # fmt: skip
    if json_out:
        print_json(res.as_dict())
    else:
        colour = "red" if res.alert else "green"
        console.print(f"[{colour}]{'ALERT' if res.alert else 'ok'}[/]: {res.reason}")
    raise typer.Exit(1 if res.alert else 0)


# -- synthesis, review, promote -----------------------------------------------------------


@app.command("synthesize")
def synthesize_cmd(
    set_name: str = typer.Option(..., "--set", help="Set that receives the proposed cases."),
    kind: str = typer.Option(
        ..., "--kind", help="ambiguous | out-of-scope | multi-hop | prompt-injection | typos."
    ),
    n: int = typer.Option(5, "--n", min=1, max=500, help="How many cases to propose."),
    from_docs: str | None = typer.Option(
        None,
        "--from-docs",
        help="Knowledge collection whose documents seed the cases (or a JSONL file/folder).",
    ),
    from_cases: bool = typer.Option(False, "--from-cases", help="Start from the set's cases."),
    model: str = typer.Option(
        "local", "--model", help="'local', a model profile, or an OpenAI-compatible URL#model."
    ),
    max_attempts: int | None = typer.Option(
        None, "--max-attempts", min=1, help="Give up after this many tries (default 3 x N)."
    ),
    seed: int = typer.Option(0, "--seed"),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Similarity from which a proposal is a near-duplicate (default: the "
        "eval_near_duplicate_threshold setting).",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Ask the LLM for adversarial cases; store the valid, non-duplicate ones as proposed."""
    from daytwo.evals.bindings import open_profiled_model
    from daytwo.evals.dedup import default_embedder
    from daytwo.evals.synthesis import KINDS, Synthesizer, load_docs
    from daytwo.exceptions import InputError

    if (from_docs is None) == (not from_cases):
        raise InputError("give exactly one of --from-docs COLLECTION or --from-cases")
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    sets = _sets()
    sets.all_inputs(set_name)  # unknown set fails before the model loads
    docs = load_docs(from_docs, kb=_knowledge()) if from_docs else None
    with ExitStack() as stack:
        needs_model = not (kind == "typos" and from_cases)  # typos of cases are deterministic
        chat, label = (
            open_profiled_model(model, stack, settings=state.settings())
            if needs_model
            else (None, "perturbation")
        )
        settings = state.settings()
        synth = Synthesizer(
            chat,
            model_name=label,
            embedder=default_embedder(settings.embedder),
            seed=seed,
            threshold=settings.eval_near_duplicate_threshold if threshold is None else threshold,
        )
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(f"{kind} cases", total=n)
            report = synth.synthesize(
                sets, set_name, kind=kind, n=n, docs=docs, max_attempts=max_attempts,
                progress=lambda done, _t: bar.update(task, completed=done),
            )  # fmt: skip
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"proposed {len(report.proposed)} of {n} {kind} cases in {report.attempts} attempts "
        f"({report.invalid} invalid, {report.degenerate} degenerate, "
        f"{report.duplicates} duplicates); review with `daytwo eval review --set {set_name}`"
    )
    for c in report.proposed:
        console.print(f"  {c.id[:10]}  {c.data['input']}", markup=False)


def _knowledge() -> Any:
    """The knowledge base, when the knowledge layer is installed (collections seed synthesis)."""
    try:
        from daytwo.knowledge import KnowledgeBase
    except ImportError:
        return None
    settings = state.settings()
    return KnowledgeBase(state.store(), settings.data_dir, embedder=settings.embedder)


@app.command("review")
def review_cmd(
    set_name: str = typer.Option(..., "--set", help="Set whose proposals to review."),
    accept: Annotated[
        list[str] | None, typer.Option("--accept", help="Case id/prefix or 'all'.")
    ] = None,
    reject: Annotated[
        list[str] | None, typer.Option("--reject", help="Case id/prefix or 'all'.")
    ] = None,
    reason: str = typer.Option(
        "", "--reason", help="Why (required to reject); kept on each case and audited."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """List proposed cases, or accept/reject them (accepted ones form a new version)."""
    from daytwo.exceptions import InputError

    sets = _sets()
    accept, reject = accept or [], reject or []
    if reject and not reason.strip():
        raise InputError(
            "a reason is required to reject proposed cases",
            hint='add --reason "what is wrong with them" (it is kept and audited)',
        )
    if not accept and not reject:
        pending = sets.proposed(set_name)
        if json_out:
            print_json(
                [
                    {
                        "id": c.id,
                        "input": c.data["input"],
                        "tags": c.data.get("tags", []),
                        "provenance": c.provenance,
                    }
                    for c in pending
                ]
            )
            return
        if not pending:
            console.print(f"no proposed cases in {set_name}")
        for c in pending:
            console.print(
                f"{c.id[:10]}  [{', '.join(c.data.get('tags', []))}] {c.data['input']}",
                markup=False,
            )
        return
    before = {c.id: c.key for c in sets.proposed(set_name)}
    info, n_acc, n_rej = sets.review(
        set_name, accept=accept, reject=reject, reason=reason.strip(), reviewer="cli"
    )
    from daytwo.cli._audit import audit_operator

    still = {c.id for c in sets.proposed(set_name)}
    audit_operator(
        "eval.case.review",
        set_name,
        {
            "accept": accept,
            "reject": reject,
            "reason": reason.strip(),
            "decided": sorted(before[i] for i in before if i not in still),
            "version": info.version if info else None,
        },
    )
    data = {"accepted": n_acc, "rejected": n_rej, "version": info.as_dict() if info else None}
    if json_out:
        print_json(data)
    else:
        where = f"; {info.set_name}@{info.version} has {info.case_count} cases" if info else ""
        console.print(f"accepted {n_acc}, rejected {n_rej}{where}")


@app.command("promote")
def promote_cmd(
    run_id: Annotated[
        str,
        typer.Argument(
            help="Run id: a runtime run, an eval result, or an external trace (otlp-…)."
        ),
    ],
    set_name: Annotated[str, typer.Option("--set", help="Set to add the case to.")],
    tag: Annotated[list[str], typer.Option("--tag", "-t", help="Failure-mode tag (repeatable).")],
    expected: str | None = typer.Option(None, "--expected", help="The answer it should give."),
    force: bool = typer.Option(False, "--force", help="Add even a near-duplicate."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Similarity from which an input is a near-duplicate (default: the "
        "eval_near_duplicate_threshold setting).",
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Turn a traced run into a golden case with provenance (near-duplicates refused)."""
    from daytwo.evals.dedup import default_embedder
    from daytwo.evals.promote import (
        EvalResultSource,
        RuntimeRunSource,
        TraceRunSource,
        promote,
    )

    store = state.store()
    settings = state.settings()
    sources: list[Any] = [EvalResultSource(store)]
    if run_id.startswith("otlp-"):
        sources.insert(0, TraceRunSource(store))  # an external agent's trace
    sources.append(RuntimeRunSource(store))
    sources.append(TraceRunSource(store))
    info, case = promote(
        store, run_id, set_name=set_name, tags=tag, sources=sources, expected_output=expected,
        embedder=default_embedder(settings.embedder), force=force,
        threshold=settings.eval_near_duplicate_threshold if threshold is None else threshold,
    )  # fmt: skip
    if json_out:
        print_json({"case": case.content(), "version": info.as_dict()})
    else:
        console.print(f"added {case.resolved_key()} to {info.set_name}@{info.version}")


# -- load, report -------------------------------------------------------------------------


@app.command("load")
def load_cmd(
    agent: str = typer.Option(
        ..., "--agent", "-a", help="AGENT@VERSION, model:local, python:mod:attr."
    ),
    set_ref: str = typer.Option("sample-support", "--set", "-s", help="Inputs come from this set."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, max=256),
    runs: int = typer.Option(20, "--runs", "-n", min=1, max=100_000),
    json_out: bool = JSON_OPT,
) -> None:
    """Scale test: throughput, p50/p95/p99 latency, error rate and cost per run."""
    from daytwo.evals.bindings import resolve_runner
    from daytwo.evals.load import load_test
    from daytwo.evals.runs import cases_for_load

    store = state.store()
    er = _runs()
    info = er.sets.resolve(set_ref)
    cases = cases_for_load(er.sets, f"{info.set_name}@{info.version}")
    with ExitStack() as stack:
        runner = resolve_runner(agent, stack, settings=state.settings(), agents=_agents(store))
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task(f"load {runner.name}", total=runs)
            summary = load_test(
                runner, cases, concurrency=concurrency, runs=runs,
                progress=lambda done, _t: bar.update(task, completed=done),
            )  # fmt: skip
    stored = er.record_load(
        runner, summary, {"set": info.set_name, "set_version": info.version, "agent_ref": agent}
    )
    summary["run_id"] = stored.id
    if json_out:
        print_json(summary)
        return
    lat = summary["latency_ms"]
    console.print(
        f"{runs} runs at concurrency {concurrency}: {summary['throughput_rps']} runs/s, "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"errors {summary['error_rate']:.1%}, cost/run ${summary['cost_per_run_usd']:.6f} "
        f"(run {stored.id[:12]})"
    )


app.command("report")(report_cmd)
