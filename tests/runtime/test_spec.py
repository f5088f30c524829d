"""Agent specs: YAML errors point at the line, DAG checks, templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from daytwo.runtime import SpecError, load_spec, load_spec_file, parse_spec_text
from daytwo.runtime.templating import render

GOOD = """\
name: demo
steps:
  - id: docs
    kind: retrieve
    collection: kb
    query: "{{ input.question }}"
  - id: answer
    kind: llm
    prompt: "Q: {{ input.question }} C: {{ steps.docs }}"
  - id: status
    kind: tool
    capability: orders.status
    arguments: {order_id: "{{ input.order_id }}"}
    fallback: status_degraded
degraded:
  - id: status_degraded
    kind: tool
    tool: orders_status_cached
output: answer
"""


def test_good_spec_orders_steps_by_dependencies() -> None:
    spec = parse_spec_text(GOOD)
    assert spec.plan() == ["docs", "answer", "status"]
    assert spec.dependencies()["answer"] == {"docs"}
    assert spec.step("status_degraded").tool == "orders_status_cached"


def test_sample_support_agent_is_valid() -> None:
    import daytwo.runtime.samples as samples

    spec, text = load_spec_file(Path(samples.__file__).with_name("support.yaml"))
    assert spec.name == "support"
    assert "retrieve" in text
    assert [spec.step(s).kind for s in spec.plan()][:3] == ["retrieve", "tool", "llm"]


def test_invalid_yaml_points_at_the_line() -> None:
    text = "name: demo\nsteps:\n  - id: a\n    kind: [tool\n"
    with pytest.raises(SpecError, match=r"<agent>:\d+: invalid YAML"):
        parse_spec_text(text)


def test_wrong_field_points_at_its_line() -> None:
    text = GOOD.replace("    collection: kb\n", "    collection: kb\n    k: lots\n")
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, source="agent.yaml")
    assert info.value.message.startswith("agent.yaml:6: steps.0.k")


def test_unknown_step_kind_is_named() -> None:
    text = "name: demo\nsteps:\n  - id: a\n    kind: teleport\n"
    with pytest.raises(SpecError, match=r"agent.yaml:3: steps.0: .*teleport"):
        parse_spec_text(text, source="agent.yaml")


def test_cycle_is_a_clear_error() -> None:
    text = """\
name: loop
steps:
  - {id: a, kind: tool, tool: t, after: [c]}
  - {id: b, kind: tool, tool: t, arguments: {x: "{{ steps.a }}"}}
  - {id: c, kind: tool, tool: t, after: [b]}
"""
    with pytest.raises(SpecError, match=r"cycle: a -> c -> b -> a"):
        parse_spec_text(text)


def test_unknown_step_reference() -> None:
    text = "name: x\nsteps:\n  - {id: a, kind: tool, tool: t, arguments: {v: '{{ steps.nope }}'}}\n"
    with pytest.raises(SpecError, match="unknown step 'nope'"):
        parse_spec_text(text)


def test_fallback_must_be_a_degraded_step() -> None:
    with pytest.raises(SpecError, match="not a degraded step"):
        load_spec(
            {"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "t", "fallback": "b"}]}
        )


def test_tool_step_needs_one_target_and_quorum_needs_n() -> None:
    with pytest.raises(SpecError, match="exactly one of 'tool' or 'capability'"):
        load_spec({"name": "x", "steps": [{"id": "a", "kind": "tool"}]})
    with pytest.raises(SpecError, match="quorum"):
        load_spec(
            {
                "name": "x",
                "steps": [
                    {"id": "m", "kind": "map", "items": "input.x", "tool": "t", "join": "quorum"}
                ],
            }
        )


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_spec_text("- a\n- b\n")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec_file(tmp_path / "nope.yaml")


def test_templates_keep_types_and_interpolate() -> None:
    ctx = {"input": {"ids": [1, 2], "q": "hi"}, "steps": {"a": {"n": 3}}}
    assert render("{{ input.ids }}", ctx) == [1, 2]
    assert render("q={{ input.q }} n={{ steps.a.n }}", ctx) == "q=hi n=3"
    assert render({"x": ["{{ steps.a }}"]}, ctx) == {"x": [{"n": 3}]}


def test_waves_group_consecutive_independent_steps() -> None:
    """A wave is a run of planned steps with no edge between them; a branch, an approval
    or a plan step stands alone, and a step that needs one of the wave starts the next."""
    spec = load_spec(
        {
            "name": "waves",
            "steps": [
                {"id": "a", "kind": "tool", "tool": "t"},
                {"id": "b", "kind": "tool", "tool": "t", "after": ["a"]},
                {"id": "c", "kind": "tool", "tool": "t", "arguments": {"x": "{{ steps.a }}"}},
                {"id": "d", "kind": "tool", "tool": "t", "after": ["b", "c"]},
                {"id": "e", "kind": "tool", "tool": "t", "after": ["b"]},
                {"id": "gate", "kind": "branch", "when": "input.x", "then": ["f"], "else": []},
                {"id": "f", "kind": "tool", "tool": "t"},
                {"id": "g", "kind": "tool", "tool": "t", "after": ["d"]},
            ],
        }
    )
    assert spec.plan() == ["a", "b", "c", "d", "e", "gate", "f", "g"]
    assert spec.waves() == [["a"], ["b", "c"], ["d", "e"], ["gate"], ["f", "g"]]
