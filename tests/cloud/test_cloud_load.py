"""Concurrent load on a real server: requests queue fairly, all get answers, and work
whose client went away is dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from cloud_service.engines import Engine

pytestmark = pytest.mark.slow  # the real model behind a real server

LONG_SKETCH = {"instruction": "Write a long essay about tea.", "max_points": 12, "max_tokens": 600}


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def in_background(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_concurrent_sessions_and_sketches_all_get_answers(
    start_cloud, prompt_tokens: list[int]
) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=16)
    statuses: list[int] = []

    def sketch() -> None:
        body = {"instruction": "Write about tea.", "max_tokens": 16}
        statuses.append(cloud.client.post("/v1/sketch", json=body).status_code)

    def session() -> None:
        opened = cloud.open(prompt_token_ids=prompt_tokens)
        for token in prompt_tokens[:3]:
            cloud.step(opened["session_id"], append=[token])
        cloud.close(opened["session_id"])
        statuses.append(200)

    threads = [in_background(fn) for fn in (sketch, session, sketch, session)]
    for thread in threads:
        thread.join(300)
    assert statuses == [200] * 4


def test_a_queued_request_whose_client_left_never_runs(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=4)
    first = in_background(lambda: cloud.client.post("/v1/sketch", json=LONG_SKETCH))
    wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 1, timeout=30)
    with pytest.raises(httpx.TimeoutException):  # this client gives up while queued
        cloud.client.post("/v1/sketch", json=LONG_SKETCH, timeout=0.5)
    wait_until(
        lambda: cloud.metric("cogenesis_cloud_admission_events_total", reason="client_gone") == 1,
        timeout=10,
    )
    assert cloud.metric("cogenesis_cloud_queue_depth") == 0
    first.join(300)
    wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 0, timeout=10)
    sketches = cloud.metric(
        "cogenesis_cloud_requests_total", route="/v1/sketch", method="POST", status="200"
    )
    assert sketches == 1  # the abandoned one was never computed
    gone = cloud.metric(
        "cogenesis_cloud_requests_total", route="/v1/sketch", method="POST", status="499"
    )
    assert gone == 1


def test_a_chat_whose_client_left_stops_at_the_next_token(cloud_engine: Engine) -> None:
    from cloud_service.errors import ClientGone

    want = cloud_engine.chat("Be brief.", "Name three colors.", max_tokens=16)
    checks = 0

    def cancelled() -> bool:  # the client leaves after four tokens
        nonlocal checks
        checks += 1
        return checks > 4

    with pytest.raises(ClientGone):
        cloud_engine.chat("Be brief.", "Name three colors.", max_tokens=400, cancelled=cancelled)
    assert checks == 5  # checked before every token: nothing computed after it left
    assert cloud_engine.chat("Be brief.", "Name three colors.", max_tokens=16) == want


def test_chats_admitted_together_keep_apart_and_match_serial_ones(cloud_engine: Engine) -> None:
    asks = ["Name three colors.", "Name three animals.", "Name three rivers."]
    serial = [cloud_engine.chat("Be brief.", ask, max_tokens=20) for ask in asks]
    together: dict[int, object] = {}
    threads = [
        in_background(
            lambda i=i, ask=ask: together.update(
                {i: cloud_engine.chat("Be brief.", ask, max_tokens=20)}
            )
        )
        for i, ask in enumerate(asks)
    ]
    for thread in threads:
        thread.join(300)
    assert [together[i] for i in range(len(asks))] == serial


def test_a_running_sketch_whose_client_left_frees_the_engine(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=4)
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):  # this client gives up mid-answer
        cloud.client.post("/v1/sketch", json=LONG_SKETCH, timeout=1.5)
    wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 0, timeout=5)
    assert time.monotonic() - started < 6.5
    route = {"route": "/v1/sketch", "method": "POST"}
    wait_until(
        lambda: cloud.metric("cogenesis_cloud_requests_total", **route, status="499") == 1,
        timeout=5,
    )
    assert cloud.metric("cogenesis_cloud_tokens_generated_total", tenant="default") == 0
