"""Bad input to the edge agent: a clear 4xx in OpenAI's error shape, nothing written."""

from __future__ import annotations

import httpx
import pytest

from tests.edge.test_chat import TASK, make_profile


def chat(edge, **body) -> httpx.Response:
    payload = {"model": "local", "messages": [{"role": "user", "content": TASK}], **body}
    return edge.http.post(f"{edge.url}/v1/chat/completions", json=payload, timeout=60)


def assert_openai_error(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in reply.text


def nothing_written(edge, user: str) -> None:
    ledger = edge.http.get(f"{edge.url}/v1/ledger", params={"user": user}).json()
    assert ledger["total"] == 0
    profiles = edge.http.get(f"{edge.url}/v1/profiles").json()["data"]
    assert [p["id"] for p in profiles] == [user]


def test_malformed_json_is_a_400(edge) -> None:
    user = make_profile(edge)
    reply = edge.http.post(
        f"{edge.url}/v1/chat/completions",
        content=b'{"model": "local", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_openai_error(reply, 400, "bad_json")
    nothing_written(edge, user)


def test_unknown_fields_are_rejected_not_ignored(edge) -> None:
    user = make_profile(edge)
    assert_openai_error(chat(edge, user=user, profile_text="leak me"), 400, "invalid_request")
    reply = chat(edge, user=user, cogenesis={"send_profile": True})
    assert_openai_error(reply, 400, "invalid_request")
    assert "send_profile" in reply.json()["error"]["message"]
    nothing_written(edge, user)


def test_an_oversized_body_is_a_413(edge) -> None:
    user = make_profile(edge)
    reply = chat(edge, user=user, messages=[{"role": "user", "content": "x" * 2_000_000}])
    assert_openai_error(reply, 413, "payload_too_large")
    nothing_written(edge, user)


def test_unknown_model_and_user(edge) -> None:
    user = make_profile(edge)
    assert_openai_error(chat(edge, model="gpt-5", user=user), 404, "model_not_found")
    assert_openai_error(chat(edge, user="u_nobody"), 404, "user_not_found")
    assert_openai_error(chat(edge), 400, "user_required")
    assert_openai_error(chat(edge, user=user, messages=[]), 400, "invalid_request")
    assert_openai_error(chat(edge, user=user, max_tokens=0), 400, "invalid_request")
    nothing_written(edge, user)


def test_a_schedule_that_never_cycles_is_a_400_naming_the_field(edge) -> None:
    user = make_profile(edge)
    schedule = {"p": 0, "k": 0, "t": 0}
    reply = chat(edge, model="cogenesis-logits", user=user, cogenesis={"schedule": schedule})
    assert_openai_error(reply, 400, "invalid_request")
    assert reply.json()["error"]["param"] == "cogenesis.schedule"
    nothing_written(edge, user)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/v1/profiles/u_nobody", None, 404),
        ("delete", "/v1/profiles/u_nobody", None, 404),
        ("patch", "/v1/profiles/u_nobody", {"age": "3"}, 404),
        ("post", "/v1/profiles", {"age": "40"}, 400),
        ("post", "/v1/profiles", {"name": "A", "favourite_colour": "red"}, 400),
        ("get", "/v1/ledger?limit=0", None, 400),
        ("get", "/v1/ledger?since=yesterday", None, 400),
    ],
)
def test_profile_and_ledger_routes_reject_bad_input(edge, method, path, body, status) -> None:
    reply = edge.http.request(method, f"{edge.url}{path}", json=body, timeout=30)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["message"]
    assert edge.http.get(f"{edge.url}/v1/profiles").json()["data"] == []
