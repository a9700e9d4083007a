"""API fuzzing (issue 18): schemathesis generates requests from the OpenAPI
document a real `worklens-collector serve` serves, and every one of them,
sent with an admin token, must get an answer that is not a server error —
no 500 on any endpoint, whatever the parameters. Bounded: a few examples per
operation, so that it runs in the normal suite."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

# API_FUZZ_EXAMPLES=300 for a longer hunt (3,300 requests, about a minute)
EXAMPLES_PER_OPERATION = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    from http_support import start_collector

    col = start_collector(tmp_path_factory.mktemp("fuzzed-collector"))
    yield col, col.token("admin")
    assert col.terminate() == 0, col.output
    assert "Traceback" not in col.output


def test_no_request_gets_a_server_error(fuzzed):
    """Each operation of the served document in turn (schemathesis' own pytest
    plugin does not run under pytest 9: the strategies are driven here)."""
    col, token = fuzzed
    api = schemathesis.openapi.from_url(col.url + "/api/v1/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    failures: list[tuple] = []
    calls: list[int] = []
    for operation in operations:
        _fuzz(operation, token, failures, calls)
    assert not failures, failures[:5]
    assert len(calls) >= 5 * len(operations)


def _fuzz(operation, token: str, failures: list[tuple], calls: list[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case) -> None:
        calls.append(1)
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if response.status_code >= 500:
            failures.append((case.method, case.formatted_path, case.query,
                             response.text[:300]))
        elif response.status_code >= 400:
            body = response.json()
            if set(body) != {"error"} or "\n" in body["error"]:
                failures.append((case.method, case.formatted_path, "error shape", body))

    run()
