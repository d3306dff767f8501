"""POST /v1/sketch/stream on a real server and the real SmolLM2: its events, and the
auth, limits, admission, quotas and cancellation it shares with /v1/sketch."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse
from pydantic import TypeAdapter

from cloud_service.testing import RunningCloud as Cloud
from shared_protocol import limits
from shared_protocol.messages import (
    SketchDoneEvent,
    SketchEvent,
    SketchPointEvent,
    SketchResponse,
)
from tests.cloud.test_cloud_api import assert_error
from tests.cloud.test_cloud_limits import assert_retry_later, wait_until

pytestmark = pytest.mark.slow  # the real model behind a real server

STREAM = "/v1/sketch/stream"
EVENT = TypeAdapter(SketchEvent)
OUTLINE = {"instruction": "Write a short blog post about morning walks.", "max_tokens": 96}


def stream_events(client: httpx.Client, body: dict) -> list[tuple[str, object, float]]:
    """(SSE event name, parsed event, seconds since the request) for each event."""
    started = time.perf_counter()
    events = []
    with connect_sse(client, "POST", STREAM, json=body) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            event = EVENT.validate_json(sse.data)
            events.append((sse.event, event, time.perf_counter() - started))
    return events


def test_the_stream_sends_each_point_then_done_and_matches_the_plain_sketch(
    cloud: Cloud,
) -> None:
    events = stream_events(cloud.client, OUTLINE)
    names = [name for name, _, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"point"}
    points = [e for _, e, _ in events if isinstance(e, SketchPointEvent)]
    done = events[-1][1]
    assert isinstance(done, SketchDoneEvent)
    assert [p.index for p in points] == list(range(len(points))) and done.points == len(points)
    assert done.model_id == cloud.engine.model_id and done.prompt_tokens > 10
    assert 0 < done.completion_tokens <= OUTLINE["max_tokens"]
    # Greedy: the same request without streaming gives the same points and counts.
    plain = SketchResponse.model_validate(cloud.client.post("/v1/sketch", json=OUTLINE).json())
    assert [p.point for p in points] == plain.points
    assert (done.prompt_tokens, done.completion_tokens) == (
        plain.prompt_tokens,
        plain.completion_tokens,
    )
    if len(points) > 1:  # the first point came before the outline was done
        assert events[0][2] < events[-1][2]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token"])
def test_the_stream_needs_the_bearer_token(cloud: Cloud, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.post(cloud.base_url + STREAM, headers=headers, json=OUTLINE)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"instruction": ', 400, "bad_json"),
        (b'{"instruction": "x", "profile": "secret"}', 422, "validation_error"),
        (b'{"instruction": "x", "max_points": 1000}', 422, "validation_error"),
        (b'{"instruction": "x", "protocol_version": "1"}', 422, "validation_error"),
        (
            b'{"instruction": "' + b"a" * (limits.MAX_BODY_BYTES + 10) + b'"}',
            413,
            "payload_too_large",
        ),
    ],
)
def test_bad_requests_are_refused_before_the_stream(
    cloud: Cloud, body: bytes, status: int, code: str
) -> None:
    response = cloud.client.post(STREAM, content=body, headers={"content-type": "application/json"})
    assert_error(response, status, code)
    assert "secret" not in response.text


def test_past_the_queue_the_stream_is_shed_with_503(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=0)
    long_sketch = {
        "instruction": "Write a long essay about tea.",
        "max_points": 12,
        "max_tokens": 600,
    }
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(cloud.client.post(STREAM, json=long_sketch))
    )
    first.start()
    try:
        wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 1, timeout=30)
        assert_retry_later(cloud.client.post(STREAM, json=OUTLINE), 503, "overloaded")
    finally:
        first.join(120)
    assert answers[0].status_code == 200


def test_tokens_per_minute_past_the_limit_get_429_before_the_stream(start_cloud) -> None:
    cloud = start_cloud(tenant_tokens_per_minute=40)
    sketch = {"instruction": "Write about tea.", "max_tokens": 16}
    done = [stream_events(cloud.client, sketch)[-1][1] for _ in range(2)]
    assert_retry_later(cloud.client.post(STREAM, json=sketch), 429, "rate_limited")
    # The streamed answers were counted, as plain ones are.
    generated = cloud.metric("cogenesis_cloud_tokens_generated_total", tenant="default")
    assert generated == sum(d.completion_tokens for d in done)


def test_a_client_that_leaves_mid_stream_stops_the_engine(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=0)
    long_sketch = {
        "instruction": "Write a long essay about tea.",
        "max_points": 12,
        "max_tokens": 900,
    }
    with connect_sse(cloud.client, "POST", STREAM, json=long_sketch) as source:
        assert source.response.status_code == 200
        wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 1, timeout=30)
    # The connection closed: the engine stops at its next token and frees the slot,
    # long before this outline would end (about 160 tokens, 9 s on a loaded 2-core host).
    wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 0, timeout=3)
    assert stream_events(cloud.client, {"instruction": "Write about tea.", "max_tokens": 16})
