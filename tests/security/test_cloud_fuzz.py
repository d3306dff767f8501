"""The cloud service under generated requests: never a 5xx, only documented statuses."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from schemathesis.generation.modes import GenerationMode

from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server
from tests.security.fuzz import EXAMPLES, fuzz, load_spec, operation_labels

TOKEN = "fuzz-token-" + "y" * 16
OPERATIONS = [
    "GET /healthz",
    "GET /v1/info",
    "POST /v1/sketch",
    "POST /v1/sketch/stream",
    "POST /v1/sessions",
    "POST /v1/sessions/{session_id}/step",
    "DELETE /v1/sessions/{session_id}",
    "GET /v1/models",
    "POST /v1/chat/completions",
]
# The OpenAI-compatible routes answer their own errors in OpenAI's shape.
OPENAI_PATHS = {"/v1/chat/completions"}


@pytest.fixture(scope="module")
def cloud_url() -> Iterator[str]:
    # Short answers and few tokens per session keep each generated request cheap.
    settings = CloudSettings(token=TOKEN, max_session_tokens=512, max_sessions=8)
    url, stop = start_cloud_server(settings, shared_default_engine())
    try:
        yield url
    finally:
        stop()


def test_the_spec_is_public_and_lists_every_route(cloud_url: str) -> None:
    reply = httpx.get(f"{cloud_url}/openapi.json")
    assert reply.status_code == 200
    assert operation_labels(load_spec(cloud_url)) == set(OPERATIONS)
    assert "CloudToken" in reply.json()["components"]["securitySchemes"]


BODIES = ("ErrorBody", "OpenAIErrorBody")


def test_errors_are_documented_with_the_one_error_body(cloud_url: str) -> None:
    spec = httpx.get(f"{cloud_url}/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    allowed = [{"$ref": "#/components/schemas/ErrorBody"}]
                    if path in OPENAI_PATHS and status in ("400", "404"):
                        allowed = [{"$ref": "#/components/schemas/OpenAIErrorBody"}]
                    if path in OPENAI_PATHS and status == "429":  # the guard's, or the quota's
                        schema = {"anyOf": schema.get("anyOf")}
                        both = [{"$ref": f"#/components/schemas/{name}"} for name in BODIES]
                        allowed = [{"anyOf": both}]
                    assert schema in allowed, (method, path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# (operation, mode, examples): an operation without inputs has no wrong request to make,
# and a valid sketch runs the model for up to 1,024 tokens, so it gets fewer examples.
CASES = [
    ("GET /healthz", POSITIVE, EXAMPLES),
    ("GET /v1/info", POSITIVE, EXAMPLES),
    ("GET /v1/models", POSITIVE, EXAMPLES),
    ("POST /v1/sketch", POSITIVE, max(2, EXAMPLES // 3)),
    ("POST /v1/sketch", NEGATIVE, EXAMPLES),
    ("POST /v1/sketch/stream", POSITIVE, max(2, EXAMPLES // 3)),
    ("POST /v1/sketch/stream", NEGATIVE, EXAMPLES),
    ("POST /v1/sessions", POSITIVE, EXAMPLES),
    ("POST /v1/sessions", NEGATIVE, EXAMPLES),
    ("POST /v1/sessions/{session_id}/step", POSITIVE, EXAMPLES),
    ("POST /v1/sessions/{session_id}/step", NEGATIVE, EXAMPLES),
    ("DELETE /v1/sessions/{session_id}", POSITIVE, EXAMPLES),
    ("DELETE /v1/sessions/{session_id}", NEGATIVE, EXAMPLES),
]


@pytest.mark.slow
@pytest.mark.parametrize(("label", "mode", "examples"), CASES)
def test_generated_requests_get_documented_answers(
    cloud_url: str, label: str, mode: GenerationMode, examples: int
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    fuzz(load_spec(cloud_url), label, cloud_url, headers, mode, examples)


@pytest.mark.parametrize("label", ["GET /v1/info", "POST /v1/sketch", "POST /v1/sketch/stream"])
def test_generated_requests_without_the_token_are_401(cloud_url: str, label: str) -> None:
    fuzz(load_spec(cloud_url), label, cloud_url, {}, GenerationMode.POSITIVE, examples=5)
