"""Golden sets: JSONL parsing with line numbers, immutable versions, diff, export, review."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.evals.cases import Case, cases_to_jsonl, parse_cases_jsonl
from daytwo.evals.datasets import GoldenSets, parse_set_ref
from daytwo.evals.samples import sample_golden_path
from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import EvalCase, EvalSetVersion


def test_sample_set_parses() -> None:
    cases = parse_cases_jsonl(sample_golden_path().read_text())
    assert len(cases) >= 12
    tags = {t for c in cases for t in c.tags}
    assert {"out-of-scope", "prompt-injection", "multi-hop", "typos", "ambiguous"} <= tags
    assert any(c.expected_tool_calls for c in cases)
    assert any(c.relevant_doc_ids for c in cases)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"input": "a"}\n{"input": "b"\n', "line 2 is not valid JSON"),
        ('{"input": "a"}\n\n[1, 2]\n', "line 3 is a JSON list"),
        ('{"input": "a"}\n{"expected_output": "x"}\n', "line 2 is not a valid case: input"),
        ('{"input": "   "}\n', "line 1 is not a valid case: input"),
        ('{"input": "a", "colour": "red"}\n', "line 1 is not a valid case: colour"),
        ('{"input": "a", "key": "k"}\n{"input": "b", "key": "k"}\n', "line 2 repeats the case key"),
        ("\n\n", "holds no cases"),
    ],
)
def test_malformed_jsonl_names_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_cases_jsonl(text, source="f.jsonl")


def test_set_ref_parsing() -> None:
    assert parse_set_ref("s") == ("s", None)
    assert parse_set_ref("s@3") == ("s", 3)
    assert parse_set_ref("s@latest") == ("s", None)
    for bad in ("s@x", "s@0", "@2"):
        with pytest.raises(InputError):
            parse_set_ref(bad)


def _c(text: str, **kw: object) -> Case:
    return Case(input=text, **kw)  # type: ignore[arg-type]


def test_versions_are_immutable_and_diffable(store: Store) -> None:
    gs = GoldenSets(store)
    gs.create("s", "demo")
    with pytest.raises(ConflictError):
        gs.create("s")
    v1 = gs.add("s", [_c("a", key="a", expected_output="1"), _c("b", key="b")])
    assert (v1.version, v1.case_count) == (1, 2)
    same = gs.add("s", [_c("a", key="a", expected_output="1")])
    assert same.version == 1
    assert not same.changed
    v2 = gs.add("s", [_c("a", key="a", expected_output="2"), _c("c", key="c")], remove=["b"])
    assert (v2.version, v2.case_count) == (2, 2)
    # version 1 still holds exactly what it held
    assert {c.key: c.data.get("expected_output") for c in gs.cases("s", 1)} == {"a": "1", "b": None}
    assert gs.resolve("s@1").version == 1
    assert gs.resolve("s").version == 2
    d = gs.diff("s", 1)
    assert (d.added, d.removed, d.changed, d.unchanged) == (["c"], ["b"], ["a"], 0)
    assert [v.version for v in gs.versions("s")] == [1, 2]
    exported = cases_to_jsonl(gs.export("s", 1))
    assert [c.key for c in parse_cases_jsonl(exported)] == ["a", "b"]
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EvalSetVersion)) == 2
        assert s.scalar(sa.select(sa.func.count()).select_from(EvalCase)) == 4


def test_unknown_set_and_version(store: Store) -> None:
    gs = GoldenSets(store)
    with pytest.raises(NotFoundError, match="golden set 'nope' does not exist"):
        gs.resolve("nope")
    gs.create("s")
    with pytest.raises(NotFoundError, match="no versions yet"):
        gs.resolve("s")
    gs.add("s", [_c("a")])
    with pytest.raises(NotFoundError, match="has no version 7"):
        gs.resolve("s@7")
    with pytest.raises(NotFoundError, match="no case 'zz'"):
        gs.add("s", [], remove=["zz"])


def test_import_creates_and_bad_file_writes_nothing(store: Store, tmp_path: Path) -> None:
    gs = GoldenSets(store)
    good = tmp_path / "good.jsonl"
    good.write_text('{"input": "a", "tags": ["x"]}\n{"input": "b"}\n')
    info = gs.import_jsonl("imp", good)
    assert info.case_count == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "c"}\n{"input": \n')
    with pytest.raises(InputError, match="line 2"):
        gs.import_jsonl("imp", bad)
    with pytest.raises(InputError, match="line 1"):
        gs.import_jsonl("other", _write(tmp_path, "x"))
    assert gs.versions("imp")[-1].version == 1
    assert not gs.exists("other")
    with pytest.raises(InputError, match="does not exist"):
        gs.import_jsonl("imp", tmp_path / "missing.jsonl")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "x.jsonl"
    p.write_text(text)
    return p


def test_proposals_review(store: Store) -> None:
    gs = GoldenSets(store)
    gs.create("s")
    gs.add("s", [_c("base", key="base")])
    props = gs.propose("s", [_c("p1"), _c("p2"), _c("p3")], {"source": "test"})
    assert len(gs.proposed("s")) == 3
    assert gs.resolve("s").case_count == 1  # proposals are not in any version
    info, acc, rej = gs.review("s", accept=[props[0].id[:8]], reject=[props[1].id])
    assert (acc, rej) == (1, 1)
    assert info is not None
    assert info.version == 2
    assert {c.key for c in gs.cases("s")} == {"base", props[0].key}
    assert [p.id for p in gs.proposed("s")] == [props[2].id]
    with pytest.raises(NotFoundError, match="no proposed case"):
        gs.review("s", accept=["ffffffff"])
    none, acc, rej = gs.review("s", reject=["all"])
    assert none is None
    assert (acc, rej) == (0, 1)
    assert gs.proposed("s") == []
    assert len(gs.all_inputs("s")) == 4
