"""schemathesis against GET /openapi.json on the local stack: every operation, valid and invalid
inputs; zero 500s, and every error in the contract's shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from devstack.local.stack import ADMIN_KEY, Stack, start_stack, stop_stack
from tests.helpers import assert_contract_error
from tracking.api_errors import CLIENT_ERROR_CODES

pytestmark = pytest.mark.e2e
CONFIG = {
    "tracking": {"events": [{"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array"]}]},
    "write_keys": ["wk_fuzz_source_1"],
}


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("fuzz"), rate_limit=0
    )  # let the fuzzer reach past the limiter
    assert stack.admin("PUT", "/v1/plugins/fuzz-plugin/config", CONFIG).status == 200
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="module")
def api_schema(fuzzed_stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_stack.url}/openapi.json")


HEADERS = {
    "x-api-key": ADMIN_KEY,
    "Authorization": "Basic " + base64.b64encode(b"wk_fuzz_source_1:").decode(),
}


def check_reply(response: Any) -> None:
    assert response.status_code != 500, response.text
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400:
        assert_contract_error(json.loads(response.text), CLIENT_ERROR_CODES)


# schemathesis's pytest plugin does not run on pytest 9 yet: each operation's strategy is driven by
# hypothesis directly instead, in both of schemathesis's modes (inputs the schema allows, and not).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_500_and_errors_keep_the_contracts_shape(
    api_schema: Any, fuzzed_stack: Stack, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            check_reply(case.call(base_url=fuzzed_stack.url, headers=HEADERS))

        try:
            fuzz()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation with no input to get wrong
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
