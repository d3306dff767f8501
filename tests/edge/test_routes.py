"""The edge's routes, mounted from one router per resource, are the documented API."""

from __future__ import annotations

EDGE_API = {
    ("get", "/healthz"),
    ("get", "/v1/models"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/profiles"),
    ("get", "/v1/profiles"),
    ("post", "/v1/profiles/import"),
    ("get", "/v1/profiles/export"),
    ("get", "/v1/profiles/{user_id}"),
    ("patch", "/v1/profiles/{user_id}"),
    ("delete", "/v1/profiles/{user_id}"),
    ("get", "/v1/ledger"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("delete", "/v1/keys/{key_id}"),
}


def test_every_route_of_the_edge_api_is_served_and_no_other(edge) -> None:
    spec = edge.http.get(f"{edge.url}/openapi.json").json()
    served = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert served == EDGE_API


def test_export_is_not_taken_for_a_user_id(edge) -> None:
    # /v1/profiles/export is declared before /v1/profiles/{user_id}: order matters.
    reply = edge.http.get(f"{edge.url}/v1/profiles/export")
    assert reply.status_code == 200 and reply.json() == []
    missing = edge.http.get(f"{edge.url}/v1/profiles/u_nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "user_not_found"
