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
        out = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
        )
        tail = f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        assert out.returncode == 0, f"{command!r} failed:\n{tail}"
