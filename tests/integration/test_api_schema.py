"""Schemathesis against the API's own OpenAPI schema: generated requests (valid and invalid)
to every operation, with a valid API key; no answer may be a 5xx, and every answer must match
the documented status codes, content type and response schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api_harness import make_keys, seed, uvicorn_server
from tests.support import fresh_database

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 60


def _run(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode, key: str) -> int:
    ran = {"n": 0}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case[Any]) -> None:
        ran["n"] += 1
        case.call_and_validate(
            headers={"X-API-Key": key},
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
        assert mode is GenerationMode.NEGATIVE
    return ran["n"]


@pytest.mark.parametrize("who", ["tenant", "admin"])
def test_no_5xx_and_responses_match_the_schema(who: str) -> None:
    with fresh_database() as url:
        seed(url, hours=3, per_hour=10)
        keys = make_keys(url)
        key = keys.acme if who == "tenant" else keys.admin
        with uvicorn_server(url) as base:
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
            operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
            total = 0
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    n = _run(operation, mode, key)
                    print(f"{who} {mode.value:8} {operation.label}: {n} cases")
                    total += n
    print(f"schemathesis ({who} key): {total} generated requests over {len(operations)} operations, no 5xx")
    assert len(operations) >= 11
    assert total >= 20 * len(operations)
