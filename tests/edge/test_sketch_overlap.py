"""Sketch mode overlaps its halves: a cold user's private prefix is prefilled while the
outline request is out, so the fill finds it cached; the answer is the same."""

from __future__ import annotations

import uuid

from tests.edge.test_chat import TASK, make_profile


def sketch(edge, user: str) -> dict:
    reply = edge.http.post(
        "/v1/chat/completions",
        json={
            "model": "cogenesis-sketch",
            "user": user,
            "max_tokens": 12,
            "messages": [{"role": "user", "content": TASK}],
        },
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def cold_sketch(edge, overlap: bool) -> dict:
    gateway = edge.services.gateway
    # A name no other request used: this user's prefix is cached nowhere yet.
    user = make_profile(edge, name=f"Ione {uuid.uuid4().hex[:8]} Vasquez-Lind")
    gateway.overlap_sketch = overlap
    try:
        body = sketch(edge, user)
    finally:
        gateway.overlap_sketch = True
    report = body["cogenesis"]
    assert report["degraded"] is False, report.get("degraded_reason")
    assert report["sketch_points"]
    return {"user": user, "body": body, "report": report}


def test_a_cold_users_prefix_is_ready_when_the_outline_arrives(edge) -> None:
    sequential = cold_sketch(edge, overlap=False)
    overlapped = cold_sketch(edge, overlap=True)
    # Only the start of the chat template can be shared with earlier prompts; with the
    # overlap the whole private prefix was prefilled during the outline request.
    shared = sequential["report"]["prefix_cached_tokens"]
    assert overlapped["report"]["prefix_cached_tokens"] > shared + 20
    # The overlap changes when the prefix is computed, not the answer.
    again = sketch(edge, overlapped["user"])
    text = again["choices"][0]["message"]["content"]
    assert text == overlapped["body"]["choices"][0]["message"]["content"]
