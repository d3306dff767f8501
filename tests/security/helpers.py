"""Small helpers of the edge's security tests: a stored user, a short chat."""

from __future__ import annotations

import httpx

TASK = "Write a two-line note to my neighbour about the garden."


def make_user(edge, name: str, **fields: str) -> str:
    """Store a profile through the admin key; returns its id."""
    reply = edge.http.post("/v1/profiles", json={"name": name, **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def chat(client: httpx.Client, **body) -> httpx.Response:
    """A short `local` completion (no cloud involved) through ``client``."""
    payload = {
        "model": "local",
        "messages": [{"role": "user", "content": TASK}],
        "max_tokens": 4,
        **body,
    }
    return client.post("/v1/chat/completions", json=payload)
