"""Property-based tests generated from the OpenAPI document: no 5xx, responses match it.

Schemathesis's pytest plugin cannot load a schema from a fixture under pytest 9, so each
operation's strategy is driven with Hypothesis directly, per backend.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

import core
from core.routes import create_app

EXAMPLES_PER_OPERATION = 25


@pytest.mark.slow
def test_api_honours_its_openapi_document(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(
        core.CreateWorkflowRequest("sales", {"nodes": {"orders": {"deps": []}}})
    )
    catalog.runs.create_run("seed-run")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(catalog))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 31  # with blame, blob lineage, the policy, run end and step routes

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def honours_schema(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        honours_schema()
