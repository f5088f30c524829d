"""The README's benchmark table is the rendering of bench/results (bench/table.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_rendered_from_results() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "table.py"), "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_stale_table_is_reported(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text().replace(" | met |", " | hand-typed |", 1)
    readme.write_text(text)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "table.py"), "--check", str(readme)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "stale" in done.stdout
