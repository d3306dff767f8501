"""Sketch mode overlaps its halves: the outline streams while the small model evaluates
the private prompt up to it, then point by point; the answer is the same as the
sequential path's (the whole outline first, then the whole prefill), token for token."""

from __future__ import annotations

import signal
import time
import uuid

import numpy as np
import pytest

from edge_agent.collab.outline_prefill import HOLD_BACK_TOKENS, OutlinePrefill
from edge_agent.collab.private import start_private
from edge_agent.conversation import Conversation
from edge_agent.job import CompletionJob
from tests.edge.test_chat import TASK, make_profile

MAX_TOKENS = 24


def sketch(edge, user: str, max_tokens: int = MAX_TOKENS) -> dict:
    reply = edge.http.post(
        "/v1/chat/completions",
        json={
            "model": "cogenesis-sketch",
            "user": user,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": TASK}],
        },
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def cold_user(edge) -> str:
    # A name no other request used: this user's prefix is cached nowhere yet.
    return make_profile(edge, name=f"Ione {uuid.uuid4().hex[:8]} Vasquez-Lind")


def sketch_with(edge, user: str, overlap: bool) -> dict:
    gateway = edge.services.gateway
    gateway.overlap_sketch = overlap
    try:
        body = sketch(edge, user)
    finally:
        gateway.overlap_sketch = True
    report = body["cogenesis"]
    assert report["degraded"] is False, report.get("degraded_reason")
    assert report["sketch_points"]
    return body


def test_the_streamed_fill_equals_the_sequential_fill_token_for_token(edge) -> None:
    user = cold_user(edge)
    streamed = sketch_with(edge, user, overlap=True)
    sequential = sketch_with(edge, user, overlap=False)
    # Greedy: the same outline, the same prompt, the same answer.
    for key in ("sketch_points", "prompt_tokens", "completion_tokens"):
        assert streamed["cogenesis"][key] == sequential["cogenesis"][key], key
    text = streamed["choices"][0]["message"]["content"]
    assert text and text == sequential["choices"][0]["message"]["content"]
    # The cold user's prompt was evaluated while the outline streamed: when it was
    # complete, only the tail (the last points, the end of the turn) was left.
    report = streamed["cogenesis"]
    assert report["prefix_cached_tokens"] > report["prompt_tokens"] / 2
    assert report["bytes_up"] > 0 and report["cloud_calls"] == 1


def test_a_cold_users_prompt_is_ready_when_the_outline_arrives(edge) -> None:
    sequential = sketch_with(edge, cold_user(edge), overlap=False)
    overlapped = sketch_with(edge, cold_user(edge), overlap=True)
    # Only the start of the chat template can be shared with earlier prompts; with the
    # overlap the private prompt up to the outline was evaluated during the stream.
    shared = sequential["cogenesis"]["prefix_cached_tokens"]
    assert overlapped["cogenesis"]["prefix_cached_tokens"] > shared + 20


def job_for(edge, user: str) -> CompletionJob:
    ctx = edge.services.store.profiles.load_context(user)
    return CompletionJob("cogenesis-sketch", ctx, Conversation(TASK), max_tokens=MAX_TOKENS)


def prefill_for(gateway, job: CompletionJob) -> OutlinePrefill:
    return OutlinePrefill(gateway.pool, job.ctx, lambda slm: gateway.outline_free_prompt(slm, job))


POINTS = ["Thank Ione for the help", "Name the report and its deadline", "Close warmly"]


def test_the_incremental_prefill_ends_as_the_one_shot_prompt(edge) -> None:
    gateway = edge.services.gateway
    job = job_for(edge, cold_user(edge))
    prefill = OutlinePrefill(
        gateway.pool, job.ctx, lambda slm: gateway.outline_free_prompt(slm, job)
    )
    with gateway.pool.acquire() as slm:
        final, _ = gateway.private_prompt(slm, job, POINTS)
    for known in range(len(POINTS) + 1):
        prefill.advance(POINTS[:known])
        evaluated = prefill.evaluated
        # What was evaluated is the one-shot prompt's beginning, token for token.
        assert evaluated == final.tokens[: len(evaluated)]
        assert prefill.model is not None and prefill.model.tokens == evaluated
    # All of it but the held-back tail and the template's end of the turn.
    suffix = len(prefill.model.tokenize("<|im_end|>\n<|im_start|>assistant\n"))
    assert len(evaluated) >= len(final.tokens) - HOLD_BACK_TOKENS - suffix


def test_a_prefill_the_final_prompt_does_not_match_gives_exact_logits(edge) -> None:
    """The outline failed after two points: the prompt without it shares only the text
    before the outline; the rest is evaluated again, and nothing stale remains."""
    gateway = edge.services.gateway
    job = job_for(edge, cold_user(edge))
    prefill = OutlinePrefill(
        gateway.pool, job.ctx, lambda slm: gateway.outline_free_prompt(slm, job)
    )
    prefill.advance(POINTS[:2])
    with gateway.pool.acquire(prefer=prefill.model) as slm, slm.lock:
        assert slm is prefill.model
        prompt, _ = gateway.private_prompt(slm, job)  # no outline
        assert slm.shared_prefix(prompt.tokens) < len(slm.tokens)  # a real mismatch
        after_prefill = start_private(slm, prompt)
        slm.start(slm.tokenize("Hi"))  # another prompt: nothing of this one is reused
        fresh = slm.start(prompt.tokens)
    np.testing.assert_array_equal(after_prefill, fresh)


def test_the_pool_lends_the_context_that_holds_most_of_the_tokens(pool) -> None:
    with pool.acquire() as one, pool.acquire() as other:
        mine = one.tokenize("Dear Ione, thank you for the report.")
        one.start(mine)
        other.start(other.tokenize("A different prompt altogether."))
    for _ in range(2):  # whichever has been idle longest
        with pool.acquire(tokens=[*mine, 42]) as chosen:
            assert chosen is one
    with pool.acquire(prefer=other, tokens=mine) as chosen:
        assert chosen is other  # a preferred model that is idle comes first


@pytest.mark.slow
def test_a_cloud_that_dies_mid_stream_degrades_within_the_timeout(
    start_edge, cloud_process
) -> None:
    url, process = cloud_process
    edge = start_edge(url, cloud_timeout_s=20, cloud_retries=2)
    user = cold_user(edge)
    cloud = edge.services.gateway.cloud
    streamed = cloud.sketch_stream

    def dying_after_the_first_point(*args, **kwargs):
        events = streamed(*args, **kwargs)
        yield next(events)
        process.send_signal(signal.SIGKILL)  # dies as a crashed or evicted replica does
        yield from events

    cloud.sketch_stream = dying_after_the_first_point  # type: ignore[method-assign]
    started = time.monotonic()
    body = sketch(edge, user)
    assert time.monotonic() - started < 20
    report = body["cogenesis"]
    assert report["degraded"] is True
    assert report["degraded_reason"].startswith("cloud unreachable"), report["degraded_reason"]
    assert body["choices"][0]["message"]["content"].strip()
    # The outline was dropped: the answer is the device's own, from the prompt without it.
    assert "sketch_points" not in report or report["sketch_points"] == []
    ledger = edge.http.get("/v1/ledger", params={"user": user}).json()
    assert [e["status"] for e in ledger["data"]] == ["error"]  # sent once, not retried
