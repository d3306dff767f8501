"""Logits mode through the edge's HTTP endpoint: concurrency and vocabulary checks."""

from __future__ import annotations

import threading
import uuid

import pytest

from cloud_service.engines.base import Engine
from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server
from tests.edge.conftest import CLOUD_TOKEN
from tests.edge.test_chat import make_profile

TASKS = [
    "Write a short thank-you note to a colleague: thank them for help with a report.",
    "Write an invitation to a picnic: invite the neighbours to the park on Sunday.",
]


def logits_request(edge, user: str, task: str) -> dict:
    reply = edge.http.post(
        f"{edge.url}/v1/chat/completions",
        json={
            "model": "cogenesis-logits",
            "user": user,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": task}],
            "cogenesis": {"draft_tokens": 4},
        },
        timeout=300,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_two_requests_at_once_run_two_cloud_sessions_and_match_serial_runs(edge) -> None:
    users = [make_profile(edge, name=f"Concurrent {uuid.uuid4().hex[:6]}") for _ in TASKS]
    serial = [logits_request(edge, u, t) for u, t in zip(users, TASKS, strict=True)]
    results: dict[int, dict] = {}

    def run(i: int) -> None:
        results[i] = logits_request(edge, users[i], TASKS[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(TASKS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for i, alone in enumerate(serial):
        together = results[i]
        assert together["cogenesis"]["degraded"] is False
        assert together["cogenesis"]["cloud_calls"] >= 2
        # Greedy decoding: sharing the cloud with another session changes nothing.
        assert (
            together["choices"][0]["message"]["content"]
            == (alone["choices"][0]["message"]["content"])
        )


class FakeForeignVocabEngine(Engine):
    """The real cloud engine under another tokenizer's fingerprint.

    A second real model with another vocabulary would cost a large download in CI; the
    edge only compares fingerprints, so a changed fingerprint is the honest stand-in.
    """

    name = "llamacpp"

    def __init__(self, real: Engine) -> None:
        super().__init__()
        self._real = real
        self.model_id = "OtherVocab-1B"
        self.vocab_size = real.vocab_size
        self.n_ctx = real.n_ctx

    @property
    def tokenizer_fingerprint(self) -> str:
        return "sha256:32000:00000000000000000000000000000000"

    def token_pieces(self):
        return self._real.token_pieces()

    def chat_prompt_tokens(self, system, user):
        return self._real.chat_prompt_tokens(system, user)

    def chat(self, *args, **kwargs):
        return self._real.chat(*args, **kwargs)

    def score(self, key, tokens, n_out, top_k):
        return self._real.score(key, tokens, n_out, top_k)


@pytest.fixture
def foreign_cloud():
    settings = CloudSettings(token=CLOUD_TOKEN)
    url, stop = start_cloud_server(settings, FakeForeignVocabEngine(shared_default_engine()))
    yield url
    stop()


def test_logits_mode_is_refused_against_a_cloud_with_another_vocabulary(
    start_edge, foreign_cloud
) -> None:
    edge = start_edge(foreign_cloud)
    user = make_profile(edge)
    reply = edge.http.post(
        f"{edge.url}/v1/chat/completions",
        json={
            "model": "cogenesis-logits",
            "user": user,
            "messages": [{"role": "user", "content": TASKS[0]}],
        },
        timeout=60,
    )
    assert reply.status_code == 409
    error = reply.json()["error"]
    assert error["code"] == "vocabulary_mismatch"
    assert "OtherVocab-1B" in error["message"] and "SmolLM2" in error["message"]
    # Sketch mode does not need a shared vocabulary and still works.
    sketch = edge.http.post(
        f"{edge.url}/v1/chat/completions",
        json={
            "model": "cogenesis-sketch",
            "user": user,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": TASKS[0]}],
        },
        timeout=120,
    )
    assert sketch.status_code == 200
    assert sketch.json()["cogenesis"]["degraded"] is False
