"""Every reproduction of issue 8, against real servers: a 4xx with a message, never a 500."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from edge_agent.app import create_app
from tests.security.helpers import TASK, chat, make_user
from tests.security.test_gates_by_name import write_gate

CANARY = "my diagnosis is HIV positive and my PIN is 4431"


def assert_error(reply: httpx.Response, status: int, code: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["message"] and set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    return error


def test_the_same_profile_id_posted_twice_is_a_409(edge) -> None:
    body = {"id": "u_twice", "name": "Ada Moss"}
    assert edge.http.post("/v1/profiles", json=body).status_code == 201
    assert_error(edge.http.post("/v1/profiles", json=body), 409, "user_exists")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"since": "1e20"}, 200),
        ({"until": "-1e17"}, 200),
        ({"since": "nan"}, 400),
        ({"since": "inf"}, 400),
        ({"until": "-inf"}, 400),
        ({"offset": "99999999999999999999"}, 400),
    ],
)
def test_ledger_queries_past_any_calendar_or_not_numbers(edge, query, status) -> None:
    reply = edge.http.get("/v1/ledger", params=query)
    if status == 200:
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"] == []
    else:
        assert_error(reply, status)


def test_a_seed_of_minus_one_is_accepted(edge) -> None:
    user = make_user(edge, "Ada Moss")
    reply = chat(edge.http, user=user, seed=-1, temperature=0.8)
    assert reply.status_code == 200, reply.text
    again = chat(edge.http, user=user, seed=-1, temperature=0.8)
    assert again.json()["choices"][0]["message"] == reply.json()["choices"][0]["message"]
    assert_error(chat(edge.http, user=user, seed=2**64), 400, "invalid_request")


def test_a_schedule_without_steps_is_a_400(edge) -> None:
    user = make_user(edge, "Ada Moss")
    reply = chat(
        edge.http,
        user=user,
        model="cogenesis-logits",
        cogenesis={"schedule": {"p": 0, "k": 0, "t": 0}},
    )
    error = assert_error(reply, 400, "invalid_request")
    assert "schedule" in error["param"]


def test_fusion_gate_without_a_gate_is_a_400_listing_the_gates(edge, cloud) -> None:
    user = make_user(edge, "Ada Moss")
    before = len(cloud.bodies())
    error = assert_error(
        chat(edge.http, user=user, model="cogenesis-logits", cogenesis={"fusion": "gate"}),
        400,
        "gate_not_found",
    )
    assert "available gates: none" in error["message"]
    assert len(cloud.bodies()) == before
    assert edge.http.get("/v1/ledger", params={"user": user}).json()["total"] == 0


def test_a_request_cannot_name_a_path(edge) -> None:
    user = make_user(edge, "Ada Moss")
    for options in ({"gate_path": "/etc/passwd"}, {"fusion": "gate", "gate": "../../etc/passwd"}):
        reply = chat(edge.http, user=user, model="cogenesis-logits", cogenesis=options)
        assert reply.status_code == 400, reply.text
        assert "root:" not in reply.text and "No such file" not in reply.text


def test_gates_by_name_from_the_folder_and_fifos_block_no_worker(
    start_edge, cloud, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    write_gate(gates / "mine.json")
    os.mkfifo(gates / "fifo.json")
    edge = start_edge(cloud.url, gates_dir=gates)
    user = make_user(edge, "Ada Moss")

    unknown = chat(
        edge.http, user=user, model="cogenesis-logits", cogenesis={"fusion": "gate", "gate": "x"}
    )
    assert "available gates: mine" in assert_error(unknown, 400, "gate_not_found")["message"]

    # Two requests that name the FIFO, then a plain local one: all answered at once.
    started = time.monotonic()
    replies: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda: replies.append(
                chat(
                    edge.http,
                    user=user,
                    model="cogenesis-logits",
                    cogenesis={"fusion": "gate", "gate": "fifo"},
                )
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status_code for r in replies] == [400, 400]
    assert chat(edge.http, user=user).status_code == 200
    assert time.monotonic() - started < 60

    fused = chat(
        edge.http,
        user=user,
        model="cogenesis-logits",
        cogenesis={"fusion": "gate", "gate": "mine"},
    )
    assert fused.status_code == 200, fused.text
    assert fused.json()["cogenesis"]["logits"]["fusion"] == "gate"


@pytest.mark.parametrize("mode", ["local", "cogenesis-sketch", "cogenesis-logits"])
def test_a_message_over_the_context_is_a_400_before_anything_leaves(edge, cloud, mode) -> None:
    user = make_user(edge, "Ada Moss")
    before = len(cloud.bodies())
    # 19,000 characters (under the 20,000 cap), digits: about one token each, so far over
    # the small model's 4,096-token context.
    long_task = ("Write down these numbers: " + " ".join(map(str, range(10_000))))[:19_000]
    reply = edge.http.post(
        "/v1/chat/completions",
        json={"model": mode, "user": user, "messages": [{"role": "user", "content": long_task}]},
    )
    error = assert_error(reply, 400, "context_length_exceeded")
    assert "messages" in (error["param"] or "")
    assert len(cloud.bodies()) == before  # nothing sent
    assert edge.http.get("/v1/ledger", params={"user": user}).json()["total"] == 0


def test_a_profile_too_big_for_the_context_is_a_400_in_sketch_mode_with_nothing_sent(
    edge, cloud
) -> None:
    extra = {f"Note_{i}": f"{'word ' * 799}end" for i in range(8)}  # 8 x 4,000 characters
    user = make_user(edge, "Ada Moss", extra=extra)
    before = len(cloud.bodies())
    reply = chat(edge.http, user=user, model="cogenesis-sketch")
    assert_error(reply, 400, "context_length_exceeded")
    assert len(cloud.bodies()) == before
    assert edge.http.get("/v1/ledger", params={"user": user}).json()["total"] == 0


def test_the_connection_stays_usable_after_errors(edge) -> None:
    user = make_user(edge, "Ada Moss")
    with httpx.Client(base_url=edge.url, headers=edge.headers(), timeout=60) as client:
        for _ in range(2):
            assert client.get("/v1/ledger", params={"since": "nan"}).status_code == 400
            assert client.post("/v1/profiles", json={"id": "u_x", "name": "A"}).status_code in (
                201,
                409,
            )
            assert client.get("/v1/profiles/u_nobody").status_code == 404
            assert chat(client, user=user, seed=-1).status_code == 200


def test_an_unexpected_error_is_a_generic_500_that_keeps_the_connection(edge, caplog) -> None:
    app: FastAPI = create_app(edge.services.settings, services=edge.services)

    @app.get("/v1/boom-for-this-test")
    def boom() -> None:
        raise RuntimeError(f"internal detail: {CANARY}")

    from cogenesis.servers import running_server

    with running_server(app) as url, httpx.Client(base_url=url, headers=edge.headers()) as client:
        reply = client.get("/v1/boom-for-this-test")
        error = assert_error(reply, 500, "internal_error")
        assert "HIV" not in reply.text and "Traceback" not in reply.text
        assert error["type"] == "server_error"
        assert client.get("/v1/models").status_code == 200  # same connection, still good
    assert "RuntimeError" in caplog.text and "boom" in caplog.text  # logged, by type and place
    assert "HIV" not in caplog.text  # but not the message, which may hold private text


def test_import_errors_over_rest_never_quote_the_profile(edge) -> None:
    item = {
        "tid": "1",
        "conversations": [{"from": "user", "value": TASK}],
        "profile": [],
        "additional_profile": f"Name: Ada Moss\n{CANARY}",
    }
    reply = edge.http.post("/v1/profiles/import", json=[item])
    error = assert_error(reply, 400, "bad_dataset")
    assert "line 2" in error["message"] and "4431" not in reply.text and "HIV" not in reply.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("location", "Paris\nPrivacy_info: injected"), ("occupation", "a\nb"), ("name", "A\u2028B")],
)
def test_one_line_fields_with_line_breaks_are_a_400(edge, field, value) -> None:
    body = {"name": "Ada Moss", field: value}
    error = assert_error(edge.http.post("/v1/profiles", json=body), 400, "invalid_request")
    assert field in error["param"] and "injected" not in error["message"]
    user = make_user(edge, "Ben Ortiz")
    patched = edge.http.patch(f"/v1/profiles/{user}", json={field: value})
    assert_error(patched, 400, "invalid_request")


def test_private_dict_keys_are_not_echoed_in_validation_errors(edge) -> None:
    reply = edge.http.post("/v1/profiles", json={"name": "Ada", "extra": {f"{CANARY}!": "x"}})
    assert_error(reply, 400, "invalid_request")
    assert "HIV" not in reply.text and "4431" not in reply.text


def test_two_import_items_for_one_person_that_disagree_are_a_400_unless_merged(edge) -> None:
    def item(tid: str, private: str) -> dict:
        return {
            "tid": tid,
            "conversations": [{"from": "user", "value": TASK}],
            "profile": [],
            "additional_profile": f"Name: Ada Moss\nAge: 41\nPrivacy_info: {private}",
        }

    items = [item("1", "Keeps bees"), item("2", "Owes money")]
    error = assert_error(edge.http.post("/v1/profiles/import", json=items), 400, "bad_dataset")
    assert "item 0" in error["message"] and "item 1" in error["message"]
    assert edge.http.get("/v1/profiles").json()["data"] == []

    merged = edge.http.post("/v1/profiles/import", params={"merge": "true"}, json=items)
    assert merged.status_code == 201, merged.text
    assert merged.json()["warnings"] and "kept item 0" in merged.json()["warnings"][0]
