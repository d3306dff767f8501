"""The outbound client against a real cloud: it honours Retry-After within its own
timeout, and tells a busy, an unreachable and a slow cloud apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud, shared_default_engine
from edge_agent.outbound import (
    CloudBusy,
    CloudClient,
    CloudTimedOut,
    CloudUnreachable,
    CloudUsage,
)
from shared_protocol import SessionOpenRequest, SessionStepRequest, SketchRequest
from tests.servers import free_port, silent_port

TOKEN = "outbound-test-token-0123456789"
METRICS_TOKEN = "outbound-metrics-token-0123456789"
LONG_SKETCH = {"instruction": "Write a long essay about tea.", "max_points": 12, "max_tokens": 600}
SKETCH = SketchRequest(instruction="Write about tea.", max_tokens=16)


class RecordingLedger:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.finished: list[int | None] = []

    def begin(self, *, endpoint: str, **_: object) -> int:
        self.sent.append(endpoint)
        return len(self.sent)

    def finish(self, _entry: int, *, http_status: int | None, **__: object) -> None:
        self.finished.append(http_status)


def client(url: str, ledger: RecordingLedger, **kw) -> CloudClient:
    kw = {"token": TOKEN, "retries": 0, "timeout_s": 60.0, **kw}
    return CloudClient(url, ledger=ledger, **kw)


@pytest.fixture
def busy_cloud() -> Iterator[tuple[RunningCloud, Callable[[], threading.Thread]]]:
    """A real cloud with one engine slot and no queue, and a way to keep it busy."""
    settings = CloudSettings(token=TOKEN, metrics_token=METRICS_TOKEN, engine_slots=1, max_queue=0)
    cloud = RunningCloud.start(settings, shared_default_engine())
    threads: list[threading.Thread] = []

    def busy() -> bool:
        return cloud.metric("cogenesis_cloud_engine_active") == 1

    def occupy() -> threading.Thread:
        thread = threading.Thread(
            target=lambda: cloud.client.post("/v1/sketch", json=LONG_SKETCH), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 30
        while not busy():
            assert time.monotonic() < deadline, "the cloud never got busy"
            time.sleep(0.02)
        threads.append(thread)
        return thread

    try:
        yield cloud, occupy
    finally:
        for thread in threads:
            thread.join(300)
        cloud.stop()


@pytest.mark.slow
def test_a_busy_cloud_is_waited_for_when_its_retry_after_fits_the_timeout(busy_cloud) -> None:
    cloud, occupy = busy_cloud
    ledger = RecordingLedger()
    occupy()
    reply = client(cloud.base_url, ledger).sketch(SKETCH, user_id="u", usage=CloudUsage())
    assert reply.points
    assert ledger.finished[0] == 503 and ledger.finished[-1] == 200
    assert ledger.sent == ["/v1/sketch"] * len(ledger.sent)  # every send in the ledger


@pytest.mark.slow
def test_a_busy_cloud_whose_retry_after_is_past_the_timeout_is_cloud_busy(busy_cloud) -> None:
    cloud, occupy = busy_cloud
    ledger = RecordingLedger()
    occupy()
    started = time.monotonic()
    with pytest.raises(CloudBusy) as caught:
        client(cloud.base_url, ledger, timeout_s=0.5).sketch(
            SKETCH, user_id="u", usage=CloudUsage()
        )
    assert time.monotonic() - started < 0.5  # no point waiting: it says so at once
    assert str(caught.value).startswith("cloud busy: answered 503")
    assert caught.value.status == 503 and caught.value.code == "overloaded"


@pytest.mark.slow
def test_a_busy_step_is_sent_again_though_steps_are_never_retried_otherwise(
    busy_cloud,
) -> None:
    cloud, occupy = busy_cloud
    ledger = RecordingLedger()
    edge = client(cloud.base_url, ledger)
    usage = CloudUsage()
    tokens = cloud.engine.chat_prompt_tokens("Be brief.", "Name a sea.")
    opened = edge.open_session(
        SessionOpenRequest(prompt_token_ids=tokens), user_id="u", mode="logits", usage=usage
    )
    occupy()
    step = SessionStepRequest(append=[tokens[-1]])
    reply = edge.step(opened.session_id, step, user_id="u", mode="logits", usage=usage)
    assert len(reply.positions) == 1
    assert 503 in ledger.finished and ledger.finished[-1] == 200


def test_a_cloud_that_refuses_connections_is_cloud_unreachable() -> None:
    ledger = RecordingLedger()
    with pytest.raises(CloudUnreachable) as caught:
        client(f"http://127.0.0.1:{free_port()}", ledger).info()
    assert str(caught.value).startswith("cloud unreachable: cannot connect")
    assert ledger.finished == [None]


def test_a_cloud_that_never_answers_is_cloud_timed_out() -> None:
    ledger = RecordingLedger()
    with silent_port() as url:
        started = time.monotonic()
        with pytest.raises(CloudTimedOut) as caught:
            client(url, ledger, timeout_s=0.5, retries=2).sketch(
                SKETCH, user_id="u", usage=CloudUsage()
            )
    assert time.monotonic() - started < 2  # not retried: a slow cloud stays slow
    assert str(caught.value).startswith("cloud timed out: no answer")
    assert len(ledger.sent) == 1


@pytest.mark.slow
def test_a_rate_limited_tenant_past_its_timeout_is_cloud_busy() -> None:
    settings = CloudSettings(token=TOKEN, tenant_requests_per_minute=1)
    cloud = RunningCloud.start(settings, shared_default_engine())
    try:
        # Retry-After is at least 1 s: past this timeout, so no waiting.
        edge = client(cloud.base_url, RecordingLedger(), timeout_s=0.5)
        edge.info()
        with pytest.raises(CloudBusy) as caught:
            edge.info()
        assert caught.value.status == 429 and caught.value.code == "rate_limited"
        assert "Retry-After" in str(caught.value)
    finally:
        cloud.stop()


def test_retry_after_may_be_an_http_date() -> None:
    from edge_agent.outbound import _retry_after_s

    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    response = httpx.Response(503, headers={"retry-after": when})
    assert 28 <= _retry_after_s(response) <= 31
    assert _retry_after_s(httpx.Response(503, headers={"retry-after": "7"})) == 7
    assert _retry_after_s(httpx.Response(503, headers={"retry-after": "soon"})) is None
    assert _retry_after_s(httpx.Response(503)) is None
