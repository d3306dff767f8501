"""The HTTP surface of a real server on the real SmolLM2 model: routes, auth, limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from cloud_service.testing import RunningCloud as Cloud
from shared_protocol import limits
from shared_protocol.messages import InfoResponse, SketchResponse

pytestmark = pytest.mark.slow  # the real model behind a real server


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"] and "Traceback" not in response.text


def test_info_reports_the_model_and_its_tokenizer_fingerprint(cloud: Cloud) -> None:
    info = InfoResponse.model_validate(cloud.client.get("/v1/info").json())
    assert info.engine == "llamacpp" and info.vocab_size == 49152
    assert info.tokenizer_fingerprint == cloud.engine.tokenizer_fingerprint
    assert info.tokenizer_fingerprint.startswith("sha256:49152:")
    assert info.max_top_k == limits.MAX_TOP_K
    assert info.capabilities == ["sketch", "logits", "propose"]


def test_healthz_needs_no_token(cloud: Cloud) -> None:
    assert httpx.get(f"{cloud.base_url}/healthz").json() == {"status": "ok"}


def test_sketch_returns_points_from_the_real_model(cloud: Cloud) -> None:
    body = {"instruction": "Write a short blog post about morning walks.", "max_tokens": 64}
    response = cloud.client.post("/v1/sketch", json=body)
    assert response.status_code == 200, response.text
    sketch = SketchResponse.model_validate(response.json())
    assert 1 <= len(sketch.points) <= 6 and all(p.strip() for p in sketch.points)
    assert 0 < sketch.completion_tokens <= 64 and sketch.prompt_tokens > 10


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/info"), ("POST", "/v1/sketch"), ("POST", "/v1/sessions/x/step")],
)
def test_v1_routes_need_the_bearer_token(
    cloud: Cloud, header: str | None, method: str, path: str
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.request(method, cloud.base_url + path, headers=headers, json={})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_400(cloud: Cloud) -> None:
    response = cloud.client.post(
        "/v1/sketch", content=b'{"instruction": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "bad_json")


def test_unknown_field_is_422_and_names_the_field(cloud: Cloud) -> None:
    response = cloud.client.post("/v1/sketch", json={"instruction": "x", "profile": "secret"})
    assert_error(response, 422, "validation_error")
    assert "profile" in response.json()["error"]["message"]
    assert "secret" not in response.text  # the input is never echoed


def test_oversized_body_is_413_before_parsing(cloud: Cloud) -> None:
    big = b'{"instruction": "' + b"a" * (limits.MAX_BODY_BYTES + 10) + b'"}'
    response = cloud.client.post(
        "/v1/sketch", content=big, headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_oversized_streamed_body_without_content_length_is_413(tight_cloud: Cloud) -> None:
    def chunks():
        for _ in range(10):
            yield b"x" * 1000  # 10 kB, chunked: no Content-Length to check up front

    response = tight_cloud.client.post("/v1/sketch", content=chunks())
    assert_error(response, 413, "payload_too_large")


def test_top_k_above_the_protocol_max_is_422(cloud: Cloud, prompt_tokens: list[int]) -> None:
    body = {"prompt_token_ids": prompt_tokens, "top_k": limits.MAX_TOP_K + 1}
    assert_error(cloud.client.post("/v1/sessions", json=body), 422, "validation_error")


def test_top_k_above_the_server_max_is_top_k_too_large(
    tight_cloud: Cloud, prompt_tokens: list[int]
) -> None:
    body = {"prompt_token_ids": prompt_tokens, "top_k": 6}
    assert_error(tight_cloud.client.post("/v1/sessions", json=body), 422, "top_k_too_large")
    opened = tight_cloud.open(prompt_token_ids=prompt_tokens, top_k=5)
    response = tight_cloud.client.post(
        f"/v1/sessions/{opened['session_id']}/step", json={"append": [504], "top_k": 6}
    )
    assert_error(response, 422, "top_k_too_large")


def test_out_of_range_token_id_is_422(cloud: Cloud, prompt_tokens: list[int]) -> None:
    response = cloud.client.post("/v1/sessions", json={"prompt_token_ids": [1, 49152]})
    assert_error(response, 422, "token_out_of_range")
    opened = cloud.open(prompt_token_ids=prompt_tokens)
    for body in ({"append": [10**12]}, {"draft": [5, 49152]}):
        response = cloud.client.post(f"/v1/sessions/{opened['session_id']}/step", json=body)
        assert_error(response, 422, "token_out_of_range")
    cloud.close(opened["session_id"])


def test_unknown_session_is_404(cloud: Cloud) -> None:
    assert_error(cloud.client.post("/v1/sessions/nope/step", json={}), 404, "session_not_found")
    assert_error(cloud.client.delete("/v1/sessions/nope"), 404, "session_not_found")


def test_closed_session_is_404(cloud: Cloud, prompt_tokens: list[int]) -> None:
    session_id = cloud.open(prompt_token_ids=prompt_tokens)["session_id"]
    cloud.close(session_id)
    response = cloud.client.post(f"/v1/sessions/{session_id}/step", json={})
    assert_error(response, 404, "session_not_found")


def test_idle_session_expires_to_404(tight_cloud: Cloud, prompt_tokens: list[int]) -> None:
    opened = tight_cloud.open(prompt_token_ids=prompt_tokens, top_k=3)
    assert opened["idle_timeout_s"] == pytest.approx(1.0)
    time.sleep(1.3)
    response = tight_cloud.client.post(f"/v1/sessions/{opened['session_id']}/step", json={})
    assert_error(response, 404, "session_not_found")


def test_oversized_append_is_422(cloud: Cloud, prompt_tokens: list[int]) -> None:
    session_id = cloud.open(prompt_token_ids=prompt_tokens)["session_id"]
    body = {"append": [504] * (limits.MAX_APPEND_TOKENS + 1)}
    response = cloud.client.post(f"/v1/sessions/{session_id}/step", json=body)
    assert_error(response, 422, "validation_error")
    cloud.close(session_id)


def test_session_token_cap_is_409_and_leaves_the_session_usable(
    tight_cloud: Cloud, prompt_tokens: list[int]
) -> None:
    cap = 64
    session_id = tight_cloud.open(prompt_token_ids=prompt_tokens, top_k=3)["session_id"]
    room = cap - len(prompt_tokens)
    url = f"/v1/sessions/{session_id}/step"
    response = tight_cloud.client.post(url, json={"append": [504] * (room - 2), "draft": [1] * 3})
    assert_error(response, 409, "session_token_cap")
    step = tight_cloud.step(session_id, append=[504] * (room - 2), draft=[1, 1])
    assert step["session_tokens"] == cap - 2 and len(step["positions"]) == 3
    assert_error(
        tight_cloud.client.post(url, json={"accept": 2, "append": [7]}), 409, "session_token_cap"
    )
    tight_cloud.close(session_id)


def test_accept_beyond_the_previous_draft_is_422(cloud: Cloud, prompt_tokens: list[int]) -> None:
    session_id = cloud.open(prompt_token_ids=prompt_tokens)["session_id"]
    cloud.step(session_id, draft=[504, 198])
    response = cloud.client.post(f"/v1/sessions/{session_id}/step", json={"accept": 3})
    assert_error(response, 422, "validation_error")
    cloud.close(session_id)


BAD_REQUESTS = [
    ("POST", "/v1/sketch", b""),
    ("POST", "/v1/sketch", b"null"),
    ("POST", "/v1/sketch", b"[1, 2]"),
    ("POST", "/v1/sketch", b'"text"'),
    ("POST", "/v1/sketch", b"\xff\xfe\x00garbage"),
    ("POST", "/v1/sketch", b'{"instruction": ""}'),
    ("POST", "/v1/sketch", b'{"instruction": 5}'),
    ("POST", "/v1/sketch", b'{"instruction": "x", "max_points": 1000}'),
    ("POST", "/v1/sketch", b'{"instruction": "x", "max_tokens": 1e309}'),
    ("POST", "/v1/sketch", b'{"instruction": "x", "protocol_version": "1"}'),
    ("POST", "/v1/sessions", b"{}"),
    ("POST", "/v1/sessions", b'{"prompt": "x", "prompt_token_ids": [1]}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": []}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": [-1]}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": [1.5]}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": ["1a"]}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": [99999999999999999999999999]}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": [1], "system": "s"}'),
    ("POST", "/v1/sessions", b'{"prompt_token_ids": [1], "top_k": 0}'),
    ("POST", "/v1/sessions/%00%ff/step", b"{}"),
    ("POST", "/v1/sessions/x/step", b'{"accept": -1}'),
    ("POST", "/v1/sessions/x/step", b'{"draft": {"a": 1}}'),
    ("GET", "/v1/sessions", b""),
    ("PUT", "/v1/info", b""),
    ("GET", "/v1/nothing-here", b""),
    ("DELETE", "/v1/sessions/", b""),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_in_the_error_shape(
    cloud: Cloud, method: str, path: str, body: bytes
) -> None:
    headers = {"content-type": "application/json"}
    response = cloud.client.request(method, path, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"] and "Traceback" not in response.text


def test_request_recording_captures_raw_bodies(cloud: Cloud, record_file: Path) -> None:
    canary = "CANARY-7f3a-recorded"
    cloud.client.post("/v1/sketch", json={"instruction": canary, "max_points": 0})
    lines = [json.loads(line) for line in record_file.read_text().splitlines()]
    bodies = [bytes.fromhex(line["body_hex"]) for line in lines if line["path"] == "/v1/sketch"]
    assert any(canary.encode() in body for body in bodies)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_create_app_refuses_to_serve_without_any_tenant(cloud: Cloud, host: str) -> None:
    from cloud_service.app import NoTenants, create_app
    from cloud_service.settings import CloudSettings

    with pytest.raises(NoTenants, match="COGENESIS_CLOUD_TOKEN"):
        create_app(CloudSettings(host=host), cloud.engine)
