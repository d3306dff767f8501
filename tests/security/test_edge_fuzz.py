"""The edge agent under generated requests: never a 5xx, only documented statuses."""

from __future__ import annotations

import httpx
import pytest
from schemathesis.generation.modes import GenerationMode

from tests.security.fuzz import EXAMPLES, fuzz, load_spec, operation_labels
from tests.security.helpers import make_user

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
WITH_INPUT = [
    "POST /v1/chat/completions",
    "POST /v1/profiles",
    "POST /v1/profiles/import",
    "GET /v1/profiles/export",
    "GET /v1/profiles/{user_id}",
    "PATCH /v1/profiles/{user_id}",
    "DELETE /v1/profiles/{user_id}",
    "GET /v1/ledger",
    "POST /v1/keys",
    "DELETE /v1/keys/{key_id}",
]
WITHOUT_INPUT = ["GET /healthz", "GET /v1/models", "GET /v1/profiles", "GET /v1/keys"]
# A valid chat completion runs the small model, so it gets fewer examples.
CASES = [(label, POSITIVE, EXAMPLES) for label in WITHOUT_INPUT] + [
    (label, mode, max(2, EXAMPLES // 3) if label.startswith("POST /v1/chat") else EXAMPLES)
    for label in WITH_INPUT
    for mode in (POSITIVE, NEGATIVE)
]


def test_the_spec_lists_every_route_and_no_422(edge) -> None:
    reply = httpx.get(f"{edge.url}/openapi.json")  # public: it holds nothing private
    assert reply.status_code == 200
    spec = reply.json()
    assert operation_labels(load_spec(edge.url)) == set(WITH_INPUT + WITHOUT_INPUT)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
            if path.startswith("/v1/"):
                assert operation["security"] == [{"LocalApiKey": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


@pytest.mark.slow
@pytest.mark.parametrize(("label", "mode", "examples"), CASES)
def test_generated_requests_get_documented_answers(
    edge, label: str, mode: GenerationMode, examples: int
) -> None:
    make_user(edge, "Ada Moss")  # something for the generated requests to find
    fuzz(load_spec(edge.url), label, edge.url, edge.headers(), mode, examples)


@pytest.mark.parametrize("label", ["GET /v1/ledger", "POST /v1/profiles"])
def test_generated_requests_with_a_user_key_get_documented_answers(edge, label: str) -> None:
    key = edge.user_key(make_user(edge, "Ada Moss"))
    fuzz(load_spec(edge.url), label, edge.url, edge.headers(key), POSITIVE, examples=6)
