"""Drift canary on the local model: record at one engine setting, check at others.

    python bench/canary_demo.py --json bench/results/canary.json

Runs the real CLI (``daytwo models canary record|check --profile local/smollm2-135m``)
in a fresh data directory: one record at the baseline setting, then one check per
setting (the baseline again as a control, other thread counts, batch sizes and
context sizes). Reported per setting: the exit code of ``check``, exact-match rate,
mean and max logprob divergence (mean |Δ logprob| of the chosen tokens over the
prefix both runs share), which prompts diverged and where, and the fingerprint keys
that changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import daytwo_cli

PROFILE = "local/smollm2-135m"
BASELINE = {"threads": 1, "batch": 512, "ctx": 2048}
# threads=2 last: on an oversubscribed 2-core machine llama.cpp's threads wait on each
# other and one check can take many minutes.
SETTINGS: list[dict[str, int]] = [
    BASELINE,  # control: the same setting again
    {"threads": 1, "batch": 8, "ctx": 2048},
    {"threads": 1, "batch": 64, "ctx": 2048},
    {"threads": 1, "batch": 512, "ctx": 512},
    {"threads": 1, "batch": 512, "ctx": 4096},
    {"threads": 2, "batch": 512, "ctx": 2048},
]


def _flags(setting: dict[str, int]) -> list[str]:
    return [f"--{k}={v}" for k, v in setting.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_out", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "DAYTWO_DATA_DIR": data_dir}
        code, _, _ = daytwo_cli(["db", "upgrade"], env)
        if code != 0:
            raise SystemExit("daytwo db upgrade failed")
        code, rec, wall = daytwo_cli(
            [
                "models",
                "canary",
                "record",
                "--profile",
                PROFILE,
                f"--max-tokens={args.max_tokens}",
                *_flags(BASELINE),
                "--json",
            ],
            env,
        )
        if code != 0:
            raise SystemExit(f"canary record failed: {rec}")
        print(f"recorded {rec['record_id']} at {BASELINE} ({wall:.0f} s)", file=sys.stderr)
        checks = []
        for setting in SETTINGS:
            code, rep, wall = daytwo_cli(
                ["models", "canary", "check", "--profile", PROFILE, *_flags(setting), "--json"],
                env,
            )
            prompts = rep.get("prompts", [])
            diverged = [
                {
                    "prompt": p["prompt"],
                    "first_divergence": p["first_divergence"],
                    "logprob_divergence": round(p["logprob_divergence"], 6),
                    "recorded": p["recorded"],
                    "now": p["now"],
                }
                for p in prompts
                if not p["exact_match"] or p["logprob_divergence"] > 0
            ]
            row = {
                "setting": setting,
                "check_exit_code": code,
                "passed": rep.get("passed"),
                "exact_match_rate": rep.get("exact_match_rate"),
                "logprob_divergence_mean": rep.get("logprob_divergence"),
                "logprob_divergence_max": rep.get("max_logprob_divergence"),
                "fingerprint_changes": rep.get("fingerprint_changes"),
                "recommendations": rep.get("recommendations", []),
                "prompts": len(prompts),
                "prompts_with_any_change": diverged,
                "wall_s": round(wall, 1),
            }
            if not prompts:
                row["error"] = rep
            checks.append(row)
            _write(args.json_out, rec, checks, args.max_tokens)
            print(
                f"{setting}: exit {code}, exact {row['exact_match_rate']}, "
                f"divergence {row['logprob_divergence_mean']}",
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps(_write(args.json_out, rec, checks, args.max_tokens), indent=2))
    return 0


def _write(path: Path, rec: Any, checks: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    """Write the result so far (after every check: a run cut short keeps what it measured)."""
    out = {
        "benchmark": "drift canary on SmolLM2-135M-Instruct Q4_1 (xllamacpp), engine settings",
        "profile": PROFILE,
        "record_setting": BASELINE,
        "max_tokens": max_tokens,
        "thresholds": {"min_exact_match": 1.0, "max_logprob_divergence": 0.05},
        "settings_planned": SETTINGS,
        "complete": len(checks) == len(SETTINGS),
        "record_fingerprint": rec.get("fingerprint"),
        "checks": checks,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    sys.exit(main())
