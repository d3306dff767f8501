"""Who can reach the edge: keys and their scopes, the Host check, no cross-site writes."""

from __future__ import annotations

import httpx
import pytest

from tests.security.helpers import chat, make_user

ROUTES_NEEDING_A_KEY = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/profiles"),
    ("POST", "/v1/profiles"),
    ("POST", "/v1/profiles/import"),
    ("GET", "/v1/profiles/export"),
    ("GET", "/v1/profiles/u_someone"),
    ("PATCH", "/v1/profiles/u_someone"),
    ("DELETE", "/v1/profiles/u_someone"),
    ("GET", "/v1/ledger"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/k_someone"),
]


def body_for(method: str) -> dict | None:
    return {} if method in ("POST", "PATCH") else None


@pytest.mark.parametrize(("method", "path"), ROUTES_NEEDING_A_KEY)
def test_every_v1_route_needs_a_key(edge, method: str, path: str) -> None:
    reply = httpx.request(method, f"{edge.url}{path}", json=body_for(method))
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"]["code"] == "missing_api_key"
    assert "cogenesis keys create" in reply.json()["error"]["message"]

    wrong = httpx.request(
        method,
        f"{edge.url}{path}",
        json=body_for(method),
        headers={"Authorization": "Bearer cgk_000000000000_not-a-real-secret"},
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_healthz_needs_no_key(edge) -> None:
    assert httpx.get(f"{edge.url}/healthz").status_code == 200


def test_a_revoked_key_stops_working(edge) -> None:
    user = make_user(edge, "Ada Moss")
    key = edge.user_key(user)
    client = edge.client(key)
    assert client.get(f"/v1/profiles/{user}").status_code == 200
    key_id = "k_" + key.split("_")[1]

    revoked = edge.http.delete(f"/v1/keys/{key_id}")

    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get(f"/v1/profiles/{user}").status_code == 401


def test_a_user_key_cannot_read_change_or_delete_another_user(edge) -> None:
    ada, ben = make_user(edge, "Ada Moss"), make_user(edge, "Ben Ortiz")
    before = edge.http.get(f"/v1/profiles/{ben}").json()
    edge.services.store.ledger.begin(ben, "sketch", "/v1/sketch", "POST", b'{"ben": 1}')
    edge.services.store.ledger.begin(ada, "sketch", "/v1/sketch", "POST", b'{"ada": 1}')
    as_ada = edge.client(edge.user_key(ada))

    for reply in (
        as_ada.get(f"/v1/profiles/{ben}"),
        as_ada.patch(f"/v1/profiles/{ben}", json={"location": "Elsewhere"}),
        as_ada.delete(f"/v1/profiles/{ben}", params={"include_ledger": "true"}),
        as_ada.get("/v1/ledger", params={"user": ben}),
        as_ada.get("/v1/profiles/u_nobody"),  # 403 too: no hint whether it exists
    ):
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"]["code"] == "permission_denied"

    assert edge.http.get(f"/v1/profiles/{ben}").json() == before
    ledger = as_ada.get("/v1/ledger").json()  # no `user`: the key's own entries
    assert [e["user_id"] for e in ledger["data"]] == [ada] and ledger["total"] == 1
    assert [p["id"] for p in as_ada.get("/v1/profiles").json()["data"]] == [ada]
    assert edge.http.get("/v1/ledger", params={"user": ben}).json()["total"] == 1


def test_a_user_key_changes_and_deletes_its_own_profile(edge) -> None:
    ada = make_user(edge, "Ada Moss")
    as_ada = edge.client(edge.user_key(ada))

    changed = as_ada.patch(f"/v1/profiles/{ada}", json={"location": "Olympia"})
    assert changed.status_code == 200 and changed.json()["location"] == "Olympia"
    assert as_ada.delete(f"/v1/profiles/{ada}").status_code == 204
    assert as_ada.get(f"/v1/profiles/{ada}").status_code == 401  # its key went with it


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/profiles"),
        ("POST", "/v1/profiles/import"),
        ("GET", "/v1/profiles/export"),
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("DELETE", "/v1/keys/k_someone"),
    ],
)
def test_admin_routes_refuse_user_keys(edge, method: str, path: str) -> None:
    as_ada = edge.client(edge.user_key(make_user(edge, "Ada Moss")))
    reply = as_ada.request(method, path, json=body_for(method))
    assert reply.status_code == 403, reply.text
    assert "admin key" in reply.json()["error"]["message"]


def test_a_chat_with_a_user_key_runs_as_that_user_and_never_as_another(edge) -> None:
    ada, ben = make_user(edge, "Ada Moss"), make_user(edge, "Ben Ortiz")
    as_ada = edge.client(edge.user_key(ada))

    other = chat(as_ada, user=ben)
    assert other.status_code == 403, other.text
    assert other.json()["error"]["param"] == "user"
    assert chat(as_ada, user=ada).status_code == 200
    own = chat(as_ada)  # no `user`: the key names the user
    assert own.status_code == 200, own.text
    assert edge.http.get("/v1/ledger", params={"user": ben}).json()["total"] == 0


def test_an_admin_key_chats_as_any_user_it_names(edge) -> None:
    ada = make_user(edge, "Ada Moss")
    assert chat(edge.http, user=ada).status_code == 200
    missing = chat(edge.http)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "user_required"


def test_keys_over_rest_show_the_secret_once(edge) -> None:
    ada = make_user(edge, "Ada Moss")

    created = edge.http.post("/v1/keys", json={"scope": "user", "user_id": ada, "label": "app"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"]["scope"] == "user" and body["secret"].startswith("cgk_")
    listed = edge.http.get("/v1/keys").json()["data"]
    assert body["key"]["id"] in [k["id"] for k in listed]
    assert body["secret"] not in edge.http.get("/v1/keys").text
    assert edge.client(body["secret"]).get(f"/v1/profiles/{ada}").status_code == 200
    unknown = edge.http.post("/v1/keys", json={"scope": "user", "user_id": "u_nobody"})
    assert unknown.status_code == 404
    assert edge.http.delete("/v1/keys/k_nothere").status_code == 404


# -- Host and origin ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/profiles/export", "/v1/ledger", "/healthz"])
def test_a_foreign_host_header_is_refused_even_with_a_key(edge, path: str) -> None:
    # DNS rebinding: the browser sends the attacker's name in Host.
    make_user(edge, "Ada Moss")
    reply = edge.http.get(path, headers={"Host": "attacker.example"})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "host_not_allowed"
    assert "Ada" not in reply.text


@pytest.mark.parametrize("host", ["127.0.0.1:1234", "localhost", "[::1]:8700", "app.localhost"])
def test_loopback_host_names_are_answered(edge, host: str) -> None:
    assert edge.http.get("/v1/models", headers={"Host": host}).status_code == 200


def test_configured_hosts_are_answered(start_edge, cloud) -> None:
    edge = start_edge(cloud.url, allowed_hosts=["edge.home.arpa"])
    assert edge.http.get("/v1/models", headers={"Host": "edge.home.arpa:8700"}).status_code == 200
    assert edge.http.get("/v1/models", headers={"Host": "other.home.arpa"}).status_code == 400


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Origin": "http://attacker.example"}, 403, "cross_site_request"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "cross_site_request"),
        ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
    ],
)
def test_no_form_or_cross_site_request_changes_state(edge, headers, status, code) -> None:
    before = edge.http.get("/v1/profiles").json()["data"]
    body = b'{"name": "Mallory"}'
    reply = edge.http.post(
        "/v1/profiles",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert edge.http.get("/v1/profiles").json()["data"] == before


def test_deletes_from_another_site_are_refused(edge) -> None:
    ada = make_user(edge, "Ada Moss")
    reply = edge.http.delete(f"/v1/profiles/{ada}", headers={"Origin": "http://attacker.example"})
    assert reply.status_code == 403
    assert edge.http.get(f"/v1/profiles/{ada}").status_code == 200


def test_the_edge_s_own_origin_may_change_state(edge) -> None:
    reply = edge.http.post("/v1/profiles", json={"name": "Ada Moss"}, headers={"Origin": edge.url})
    assert reply.status_code == 201, reply.text


def test_no_cors_by_default(edge) -> None:
    preflight = edge.http.options(
        "/v1/profiles",
        headers={
            "Origin": "http://attacker.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = edge.http.get("/v1/models", headers={"Origin": "http://attacker.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_listed_origins_get_cors(start_edge, cloud) -> None:
    edge = start_edge(cloud.url, cors_origins=["http://localhost:3000"])
    preflight = edge.http.options(
        "/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    made = edge.http.post(
        "/v1/profiles", json={"name": "Ada Moss"}, headers={"Origin": "http://localhost:3000"}
    )
    assert made.status_code == 201
    other = edge.http.options(
        "/v1/chat/completions",
        headers={"Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.headers.get("access-control-allow-origin") != "http://attacker.example"


# -- keys off ---------------------------------------------------------------------------------


def test_with_auth_off_no_key_is_needed_on_loopback(start_edge, cloud) -> None:
    edge = start_edge(cloud.url, auth="off")
    reply = httpx.post(f"{edge.url}/v1/profiles", json={"name": "Ada Moss"})
    assert reply.status_code == 201
    assert httpx.get(f"{edge.url}/v1/ledger").status_code == 200
    # The Host check still holds.
    assert httpx.get(f"{edge.url}/v1/ledger", headers={"Host": "evil.example"}).status_code == 400
