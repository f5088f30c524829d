"""An agent's ``model:`` and a step's own ``model:`` choose the LLM that answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daytwo.models.types import Usage
from daytwo.runtime import Runtime, Services, load_spec
from daytwo.runtime.adapters import ModelLLM, default_services
from daytwo.runtime.protocols import LLMResult
from daytwo.settings import Settings
from daytwo.store import Store


class Named:
    """An LLM that answers with its own name (and says which model it is)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, schema: Any, max_tokens: int
    ) -> LLMResult:
        return LLMResult(
            text=self.name, usage=Usage(input_tokens=3, output_tokens=1), model=self.name
        )


SPEC = {
    "name": "two-models",
    "model": "vendor/big",
    "steps": [
        {"id": "draft", "kind": "llm", "prompt": "draft it"},
        {"id": "check", "kind": "llm", "prompt": "check it", "model": "vendor/small"},
    ],
}


def test_agent_and_step_models_pick_the_llm(sqlite_store: Store, tmp_path: Path) -> None:
    asked: list[str] = []

    def llm_for(profile: str) -> Named:
        asked.append(profile)
        return Named(profile)

    rt = Runtime(sqlite_store, Services(llm=Named("default"), llm_for=llm_for), data_dir=tmp_path)
    with rt:
        rt.registry.register(load_spec(SPEC))
        run = rt.start("two-models", {})
        assert run["status"] == "succeeded", run["error"]
        assert run["outputs"]["steps"] == {"draft": "vendor/big", "check": "vendor/small"}
        assert asked == ["vendor/big", "vendor/small"]

        # No model named anywhere: the services' default LLM answers.
        rt.registry.register(
            load_spec({"name": "plain", "steps": [{"id": "a", "kind": "llm", "prompt": "x"}]})
        )
        assert rt.start("plain", {})["outputs"]["steps"] == {"a": "default"}


def test_an_unknown_model_fails_the_step_naming_the_profile(
    sqlite_store: Store, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    services = default_services(settings, sqlite_store)
    assert services.llm_for is not None
    # The default profile's LLM is the one the services already hold (loaded once).
    assert services.llm_for(settings.default_model) is services.llm
    assert isinstance(services.llm_for("local/smollm2-135m"), ModelLLM)
    rt = Runtime(sqlite_store, services, data_dir=tmp_path)
    with rt:
        rt.registry.register(
            load_spec(
                {
                    "name": "typo",
                    "model": "openai/gpt-4o-mimi",
                    "retry": {"attempts": 1},
                    "steps": [{"id": "a", "kind": "llm", "prompt": "x"}],
                }
            )
        )
        run = rt.show(rt.start("typo", {})["id"])
    assert run["status"] == "failed"
    assert "gpt-4o-mimi" in str(run["error"]) + str(run["outputs"])
