"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis):
whatever an authenticated admin sends, the API answers without a server error."""

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err, Ok

from cropai.config import Settings
from cropai.db import Role
from tests.api_fixtures import new_account

EXAMPLES_PER_OPERATION = 25


def test_no_operation_answers_with_a_server_error(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]  # the schema itself is valid
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 20  # every router is in the schema
    # Logging out everywhere ends the fuzzing admin's own token: that operation goes last.
    operations.sort(key=lambda operation: operation.path == "/auth/logout")
    server_errors: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def answers_without_a_server_error(case: schemathesis.Case) -> None:
            # The admin's own credentials win (a fuzzed X-API-Key would too), so that the fuzzer
            # reaches the handlers; a fuzzed password change of the admin is aimed elsewhere.
            headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
            if case.path_parameters and case.path_parameters.get("user_id") == admin.id:
                return
            response = case.call(headers={**headers, **admin.headers})
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                )

        answers_without_a_server_error()
    assert server_errors == []
