"""The model adapter on the local model: compile, canary, migrate — the sample agent.

    python bench/model_adapter_demo.py --json bench/results/model_adapter.json [--html R.html]

Runs the real CLI in a fresh data directory and records what each step printed:

1. ``models compile``: the sample support agent's abstract prompt compiled for the
   local SmolLM2 (GGUF tokenizer and chat template, grammar for structure) and for a
   scripted model of another family (cl100k tokenizer, no system role, structure by a
   forced tool call), with the token counts of both sides.
2. ``models canary record`` on SmolLM2 at one engine setting and ``check`` at another
   (a smaller batch): the verdict, the divergence, and the parameters it recommends.
3. ``models migrate-report`` both ways between SmolLM2 and the other family over the
   sample golden set (answers and one structured row): gates, and the re-prompt-or-
   fine-tune decision.

The other family is a scripted server (:class:`daytwo.testing.OtherFamilyModel`) that
refuses a system message like such vendors do; it answers the golden questions from the
set's own expected answers for every second question and with a vaguer answer for the
others, so the report has semantic differences to decide on. SmolLM2 answers for real.
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
from daytwo.evals.samples import sample_golden_path
from daytwo.runtime.samples import support_agent_path
from daytwo.testing import OtherFamilyModel, ScriptedModelServer, other_family_profile
from daytwo.testing.other_family import OTHER_FAMILY, profiles_yaml

LOCAL = "local/smollm2-135m"
RECORD = ["--threads=1", "--batch=512", "--ctx=2048"]
CHECK = ["--threads=1", "--batch=8", "--ctx=2048"]
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "refund": {"type": "boolean"}},
    "required": ["order_id", "refund"],
}


def _golden_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in sample_golden_path().read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        rows.append(
            {"id": case["key"], "input": case["input"], "expected": case["expected_output"]}
        )
    rows.append(
        {
            "id": "order-refund",
            "input": "Extract as JSON: order A-1003, the customer asks for a refund.",
            "schema": ORDER_SCHEMA,
            "expected": {"order_id": "A-1003", "refund": True},
        }
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def _other_family_answer(rows: list[dict[str, Any]]) -> Any:
    by_input = {r["input"]: (i, r) for i, r in enumerate(rows)}

    def answer(prompt: str) -> Any:
        for text, (i, row) in by_input.items():
            if text in prompt:
                if row.get("schema"):
                    return row["expected"]
                return row["expected"] if i % 2 == 0 else "Please contact support about that."
        return "I do not know."

    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_out", type=Path, required=True)
    parser.add_argument("--html", type=Path, default=None, help="Also keep the migration HTML.")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "benchmark": "model adapter on the sample agent: compile, canary, migrate-report",
        "local_profile": LOCAL,
        "other_family": OTHER_FAMILY,
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        env = {**os.environ, "DAYTWO_DATA_DIR": str(data)}
        rows = _golden_rows(Path(tmp) / "golden.jsonl")
        model = OtherFamilyModel(_other_family_answer(rows))
        with ScriptedModelServer(responder=model) as server:
            (data / "profiles.yaml").write_text(
                profiles_yaml(other_family_profile(server.base_url)), encoding="utf-8"
            )
            code, _, _ = daytwo_cli(["db", "upgrade"], env)
            if code != 0:
                raise SystemExit("daytwo db upgrade failed")
            context = Path(tmp) / "context.json"
            context.write_text(
                json.dumps(
                    {"input": {"question": rows[0]["input"], "order_id": "A-1003"}, "steps": {}}
                ),
                encoding="utf-8",
            )
            compiled = {}
            for target in (LOCAL, OTHER_FAMILY):
                code, body, wall = daytwo_cli(
                    [
                        "models", "compile", "--agent", str(support_agent_path()),
                        "--to", target, "--context", str(context), "--json",
                    ],
                    env,
                )  # fmt: skip
                compiled[target] = {"exit_code": code, "wall_s": round(wall, 1), "result": body}
            out["compile"] = compiled
            code, _, wall = daytwo_cli(
                ["models", "canary", "record", "--profile", LOCAL, *RECORD, "--json"], env
            )
            code2, chk, wall2 = daytwo_cli(
                ["models", "canary", "check", "--profile", LOCAL, *CHECK, "--json"], env
            )
            out["canary"] = {
                "record_setting": RECORD,
                "check_setting": CHECK,
                "record_exit_code": code,
                "check_exit_code": code2,
                "passed": chk.get("passed"),
                "exact_match_rate": chk.get("exact_match_rate"),
                "logprob_divergence": chk.get("logprob_divergence"),
                "fingerprint_changes": chk.get("fingerprint_changes"),
                "recommendations": chk.get("recommendations"),
                "wall_s": [round(wall, 1), round(wall2, 1)],
            }
            out["migrate_report"] = {}
            for src, dst in ((LOCAL, OTHER_FAMILY), (OTHER_FAMILY, LOCAL)):
                html = Path(tmp) / "migration.html"
                if args.html is not None and src == OTHER_FAMILY:
                    html = args.html
                refused_before = model.refused
                code, rep, wall = daytwo_cli(
                    [
                        "models", "migrate-report", "--from", src, "--to", dst,
                        "--golden", str(Path(tmp) / "golden.jsonl"), "--html", str(html),
                        f"--max-tokens={args.max_tokens}", "--reprompt-hours", "6",
                        "--finetune-hours", "10", "--hourly-usd", "120", "--json",
                    ],
                    env,
                )  # fmt: skip
                out["migrate_report"][f"{src} -> {dst}"] = {
                    "exit_code": code,
                    "wall_s": round(wall, 1),
                    "source": rep.get("source"),
                    "target": rep.get("target"),
                    "token_inflation": rep.get("token_inflation"),
                    "agreement_rate": rep.get("agreement_rate"),
                    "gates": rep.get("gates"),
                    "decision": rep.get("decision"),
                    "system_messages_refused_by_other_family": model.refused - refused_before,
                    "html_has_decision": html.exists()
                    and "Re-prompt or fine-tune" in html.read_text(encoding="utf-8"),
                }
    out["load_average_end"] = os.getloadavg()
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
