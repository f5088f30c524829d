"""Contract test: schemathesis against the OpenAPI document (no 5xx, responses match schema).

Bounded: a few examples per operation, derandomized, all operations in one test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys, make_keys

pytestmark = [
    pytest.mark.slow,
    # schemathesis' own strategies touch the `random` module, which Hypothesis deprecates.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

MAX_EXAMPLES = 8

# The bulk route takes NDJSON text (its schema: a string); send it as plain text is sent.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def test_api_contract(sqlite_store: Store, tmp_path: Path) -> None:
    keys = make_keys(sqlite_store)
    app = create_app(Settings(data_dir=tmp_path, database_url=sqlite_store.url), sqlite_store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    # The admin key of tenant acme: the widest view one tenant has.
    headers = Keys.header(keys.admin)
    checked: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # Every other check runs (no 5xx, status codes, content types, response schemas,
            # negative data rejected). A schema-valid body can still be semantically wrong
            # (an agent spec that is not YAML, an unknown agent): those get a 4xx on purpose.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
        checked.append(operation.label)
    assert "DELETE /api/v1/keys/{key_id}" in checked
