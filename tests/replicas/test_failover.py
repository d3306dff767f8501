"""A logits answer survives the loss of its cloud replica: the edge reopens the session
on whichever replica answers, with the public prompt and the tokens the cloud already
had. Real processes, a real nginx (round-robin, no stickiness), the real models; greedy
answers equal the single-replica answer and are not degraded."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cogenesis.servers import wait_healthy
from edge_agent.collab.logits import (
    CloudLink,
    LogitsLoop,
    LogitsOptions,
    LogitsResult,
    PublicPrompt,
)
from edge_agent.collab.private import PrivatePrompt
from edge_agent.outbound import CloudClient, CloudUsage
from tests.replicas.cluster import Cluster, Replica, nginx_binary, start_cluster, start_replica

pytestmark = pytest.mark.slow

TOKEN = "failover-test-token-0123456789"
SYSTEM = (
    "You are Ana Ribeiro, a marine biologist in Lisbon who surfs at dawn and writes "
    "short, warm posts about the ocean."
)
TASK = "Write a short blog post about your weekend."
OPEN_FIELDS = {"protocol_version", "prompt", "system", "top_k", "append", "draft", "replaces"}


class MemoryLedger:
    """Keeps every payload the outbound client sends (the store's ledger is not needed)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def begin(self, *, endpoint: str, payload: bytes, **_: object) -> int:
        self.sent.append((endpoint, payload))
        return len(self.sent)

    def finish(self, *_: object, **__: object) -> None:
        pass

    def reopens(self) -> list[dict]:
        opens = [json.loads(p) for endpoint, p in self.sent if endpoint == "/v1/sessions"]
        return [body for body in opens if "replaces" in body]


@pytest.fixture(scope="module")
def edge_model():
    from edge_agent.slm import SmallModel
    from shared_protocol.defaults import default_gguf_path

    return SmallModel(default_gguf_path(), n_ctx=2048, n_threads=1)


@pytest.fixture(scope="module")
def private(edge_model) -> list[int]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    return edge_model.tokenize(edge_model.render_chat(messages))


def answer(
    model, private: list[int], url: str, on_token: Callable[[int], None] | None = None
) -> tuple[LogitsResult, MemoryLedger]:
    ledger = MemoryLedger()
    client = CloudClient(url, token=TOKEN, ledger=ledger, retries=1, backoff_s=0.2)
    model.start(private)  # the same starting state for every run
    try:
        result = LogitsLoop(
            model,
            PrivatePrompt.uncached(private),
            PublicPrompt(text=TASK, system="Be brief."),
            LogitsOptions(draft_tokens=4, max_tokens=32),
            cloud=CloudLink(client, "u-test", CloudUsage()),
            on_token=on_token,
        ).run()
    finally:
        client.close()
    return result, ledger


def assert_reopens_send_nothing_new(ledger: MemoryLedger, result: LogitsResult) -> None:
    reopens = ledger.reopens()
    assert len(reopens) == result.session_reopens >= 1
    for body in reopens:
        assert set(body) <= OPEN_FIELDS
        assert body["prompt"] == TASK and body["system"] == "Be brief."
        assert body["append"] == result.tokens[: len(body["append"])]  # what it already had
    assert not any(b"Ribeiro" in payload for _, payload in ledger.sent)


def after(n: int, action: Callable[[], None]) -> Callable[[int], None]:
    seen = 0

    def on_token(_: int) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            action()

    return on_token


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[list[Replica]]:
    """One cloud process; the test may replace it (the list holds the live one last)."""
    live = [start_replica(tmp_path, TOKEN, 0, {})]
    wait_healthy(live[0].url, live[0].process, live[0].log)
    try:
        yield live
    finally:
        for r in live:
            r.kill()


def test_a_restarted_cloud_is_not_a_degraded_answer(
    edge_model, private: list[int], replica: list[Replica], tmp_path: Path
) -> None:
    url = replica[0].url
    reference, _ = answer(edge_model, private, url)
    assert not reference.degraded and reference.generated_tokens > 10

    def restart() -> None:  # its sessions are gone: the next step gets session_not_found
        replica[0].kill()
        replica.append(start_replica(tmp_path, TOKEN, 1, {}, port=replica[0].port))
        wait_healthy(replica[-1].url, replica[-1].process, replica[-1].log)

    result, ledger = answer(edge_model, private, url, on_token=after(8, restart))
    assert not result.degraded, result.degraded_reason
    assert result.tokens == reference.tokens
    assert_reopens_send_nothing_new(ledger, result)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx; ./dev test installs it)")
    running = start_cluster(tmp_path, TOKEN)
    try:
        yield running
    finally:
        running.stop()


def test_killing_a_replica_mid_answer_behind_nginx_changes_nothing(
    edge_model, private: list[int], cluster: Cluster
) -> None:
    reference, _ = answer(edge_model, private, cluster.replicas[0].url)  # one replica alone

    def kill_soon() -> None:  # lands while the next step is on its way, or in flight
        threading.Timer(0.05, cluster.replicas[0].kill).start()

    result, ledger = answer(edge_model, private, cluster.url, on_token=after(6, kill_soon))
    assert cluster.replicas[0].process.poll() is not None  # it did die mid-answer
    assert not result.degraded, result.degraded_reason
    assert result.tokens == reference.tokens
    assert_reopens_send_nothing_new(ledger, result)
