"""Property-based fuzzing of a running app, generated from the OpenAPI spec it serves.

Schemathesis turns each operation of the spec into a Hypothesis strategy: valid
requests (positive) and requests the spec says are wrong (negative). Every answer must
be below 500 and carry a status code the spec documents for that operation, with the
documented content type and body schema.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# CI runs a bounded number of examples per operation and mode; raise it to dig deeper.
EXAMPLES = int(os.environ.get("COGENESIS_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def load_spec(base_url: str, headers: dict[str, str] | None = None) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", headers=headers or {}, timeout=30
    )


def operation_labels(spec: schemathesis.BaseSchema) -> set[str]:
    return {result.ok().label for result in spec.get_all_operations()}


def fuzz(
    spec: schemathesis.BaseSchema,
    label: str,
    base_url: str,
    headers: dict[str, str],
    mode: GenerationMode,
    examples: int = EXAMPLES,
) -> None:
    """Send ``examples`` generated requests to one operation; fail on the first bad answer."""
    operation = spec.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the spec"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,  # each run explores afresh; a failure prints its reproduction
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=120)
        case.validate_response(response, checks=CHECKS)

    run()
