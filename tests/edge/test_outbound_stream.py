"""The outbound client's streamed outline against real clouds: ledgered byte for byte
before it is sent, the same failure kinds as every call, retried only before its first
event."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud, shared_default_engine
from cogenesis.servers import free_port
from edge_agent.outbound import (
    CloudBusy,
    CloudTimedOut,
    CloudUnreachable,
    CloudUsage,
)
from shared_protocol import SketchDoneEvent, SketchPointEvent, SketchRequest
from tests.edge.conftest import CLOUD_TOKEN
from tests.edge.test_outbound import TOKEN, busy_cloud, client  # noqa: F401 - a fixture
from tests.servers import silent_port

OUTLINE = SketchRequest(instruction="Write a short blog post about morning walks.", max_tokens=96)


class WatchingLedger:
    """Keeps each payload, and how many bodies the cloud had received when it came."""

    def __init__(self, received: Path | None = None) -> None:
        self.received = received
        self.payloads: list[bytes] = []
        self.cloud_had: list[int] = []
        self.finished: list[dict] = []

    def cloud_bodies(self) -> list[bytes]:
        if self.received is None or not self.received.exists():
            return []
        lines = [json.loads(line) for line in self.received.read_text().splitlines()]
        return [bytes.fromhex(line["body_hex"]) for line in lines]

    def begin(self, *, endpoint: str, payload: bytes, **_: object) -> int:
        assert endpoint == "/v1/sketch/stream"
        self.payloads.append(payload)
        self.cloud_had.append(len(self.cloud_bodies()))
        return len(self.payloads)

    def finish(self, _entry: int, **outcome: object) -> None:
        self.finished.append(outcome)


@pytest.fixture
def recording_cloud(tmp_path: Path) -> Iterator[tuple[RunningCloud, Path]]:
    received = tmp_path / "received.jsonl"
    settings = CloudSettings(token=TOKEN, record_requests_to=received)
    cloud = RunningCloud.start(settings, shared_default_engine())
    try:
        yield cloud, received
    finally:
        cloud.stop()


@pytest.mark.slow
def test_the_stream_is_ledgered_byte_for_byte_before_it_is_sent(recording_cloud) -> None:
    cloud, received = recording_cloud
    ledger = WatchingLedger(received)
    usage = CloudUsage()
    events = list(client(cloud.base_url, ledger).sketch_stream(OUTLINE, user_id="u", usage=usage))
    assert isinstance(events[-1], SketchDoneEvent)
    assert all(isinstance(e, SketchPointEvent) for e in events[:-1]) and events[:-1]
    # Ledgered first (the cloud had nothing yet), and exactly what the cloud received.
    assert ledger.cloud_had == [0]
    assert ledger.payloads == ledger.cloud_bodies() == [OUTLINE.model_dump_json().encode()]
    (outcome,) = ledger.finished
    assert outcome["status"] == "ok" and outcome["http_status"] == 200
    assert outcome["bytes_down"] == usage.bytes_down > 0
    assert usage.calls == 1 and usage.bytes_up == len(ledger.payloads[0])


@pytest.mark.slow
def test_a_reader_that_stops_early_closes_the_stream_and_its_entry(recording_cloud) -> None:
    cloud, _ = recording_cloud
    ledger = WatchingLedger()
    events = client(cloud.base_url, ledger).sketch_stream(OUTLINE, user_id="u", usage=CloudUsage())
    assert isinstance(next(events), SketchPointEvent)
    events.close()
    (outcome,) = ledger.finished
    assert outcome["status"] == "error" and "stopped by the edge" in outcome["error"]


def test_a_silent_cloud_is_timed_out_by_the_read_timeout_and_not_retried() -> None:
    ledger = WatchingLedger()
    with silent_port() as url:
        edge = client(url, ledger, timeout_s=30, read_timeout_s=0.5, retries=2)
        started = time.monotonic()
        with pytest.raises(CloudTimedOut):
            list(edge.sketch_stream(OUTLINE, user_id="u", usage=CloudUsage()))
    assert time.monotonic() - started < 3
    assert len(ledger.payloads) == 1 and ledger.finished[0]["status"] == "error"


def test_a_cloud_that_refuses_connections_is_unreachable_after_its_retries() -> None:
    ledger = WatchingLedger()
    edge = client(f"http://127.0.0.1:{free_port()}", ledger, retries=2, backoff_s=0.01)
    with pytest.raises(CloudUnreachable):
        next(edge.sketch_stream(OUTLINE, user_id="u", usage=CloudUsage()))
    assert len(ledger.payloads) == 3  # before the first event, retried as any call


@pytest.mark.slow
def test_a_busy_cloud_is_waited_for_before_the_stream_begins(busy_cloud) -> None:  # noqa: F811
    cloud, occupy = busy_cloud
    ledger = WatchingLedger()
    occupy()
    small = SketchRequest(instruction="Write about tea.", max_tokens=16)
    events = list(
        client(cloud.base_url, ledger).sketch_stream(small, user_id="u", usage=CloudUsage())
    )
    assert isinstance(events[-1], SketchDoneEvent)
    statuses = [outcome["http_status"] for outcome in ledger.finished]
    assert statuses[0] == 503 and statuses[-1] == 200


@pytest.mark.slow
def test_a_busy_cloud_past_the_timeout_is_cloud_busy(busy_cloud) -> None:  # noqa: F811
    cloud, occupy = busy_cloud
    occupy()
    with pytest.raises(CloudBusy):
        edge = client(cloud.base_url, WatchingLedger(), timeout_s=0.5)
        next(edge.sketch_stream(OUTLINE, user_id="u", usage=CloudUsage()))


@pytest.mark.slow
def test_a_cloud_that_dies_mid_stream_is_unreachable_and_not_retried(cloud_process) -> None:
    url, process = cloud_process
    ledger = WatchingLedger()
    events = client(url, ledger, token=CLOUD_TOKEN, retries=2, backoff_s=0.01).sketch_stream(
        SketchRequest(instruction="Write a long essay about tea.", max_points=12, max_tokens=400),
        user_id="u",
        usage=CloudUsage(),
    )
    assert isinstance(next(events), SketchPointEvent)
    process.send_signal(signal.SIGKILL)  # dies as a crashed or evicted replica does
    with pytest.raises(CloudUnreachable):
        list(events)
    assert len(ledger.payloads) == 1  # after the first event, never sent again
