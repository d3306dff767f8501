"""Canary tests: private context planted with unique strings never reaches the cloud.

The cloud service under test records every raw request body it receives; the edge's
ledger records every body it sends. Both are searched for the canaries, as bytes and,
for logits mode, as the text the cloud could rebuild from the token ids it was sent.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.edge.test_chat import client_for

TASK = "Write a short thank-you note to a colleague: thank them for help with a report."


def canary_profile(tag: str) -> tuple[dict, list[str]]:
    """A profile whose every field and history item carries a unique canary word."""

    def c(field: str) -> str:
        return f"Qz{field}{tag}"

    body = {
        "name": f"Velma {c('Name')}",
        "age": "38",
        "occupation": f"Lighthouse keeper at {c('Occupation')} Point",
        "location": f"{c('Location')}ville, Maine",
        "personal_traits": f"Patient; collects {c('Traits')} stamps",
        "writing_style": f"Dry humour; signs off with {c('Style')}",
        "private_information": f"Owes money to {c('Private')}; allergic to {c('Allergy')}",
        "smart_device_usage": f"Tracks sleep with {c('Device')} app",
        "assistant_usage": f"Drafts letters to {c('Assistant')}",
        "extra": {"pet": f"a parrot named {c('Pet')}"},
        "history": [
            {
                "title": f"Letter to {c('HistTitle')}",
                "text": f"Dear {c('HistText')}, the "
                f"storm passed and the lamp at {c('HistPlace')} held all night.",
            },
        ],
    }
    canaries = [
        f"Qz{f}{tag}"
        for f in (
            "Name",
            "Occupation",
            "Location",
            "Traits",
            "Style",
            "Private",
            "Allergy",
            "Device",
            "Assistant",
            "Pet",
            "HistTitle",
            "HistText",
            "HistPlace",
        )
    ]
    return body, canaries


def cloud_view(edge, bodies: list[bytes]) -> str:
    """Everything the cloud could read: raw bodies plus text rebuilt from token ids."""
    with edge.services.pool.acquire() as slm:
        parts = []
        for body in bodies:
            parts.append(body.decode("utf-8", errors="replace"))
            try:
                message = json.loads(body)
            except ValueError:
                continue
            ids = (
                message.get("prompt_token_ids", [])
                + message.get("append", [])
                + message.get("draft", [])
            )
            if ids:
                parts.append(slm.detokenize(ids).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def ledger_total(edge) -> int:
    return edge.http.get(f"{edge.url}/v1/ledger", params={"limit": 1}).json()["total"]


def assert_no_canary(text: str, canaries: list[str]) -> None:
    leaked = [c for c in canaries if c.lower() in text.lower()]
    assert leaked == [], f"canaries reached the cloud: {leaked}"


@pytest.mark.parametrize("mode", ["cogenesis-sketch", "cogenesis-logits"])
def test_no_canary_reaches_the_cloud_or_the_ledger(edge, cloud, mode) -> None:
    tag = uuid.uuid4().hex[:6]
    body, canaries = canary_profile(tag)
    reply = edge.http.post(f"{edge.url}/v1/profiles", json=body, timeout=30)
    user = reply.json()["id"]
    before = len(cloud.bodies())
    ledger_before = ledger_total(edge)
    answer = client_for(edge).chat.completions.create(
        model=mode,
        user=user,
        max_tokens=24,
        messages=[{"role": "user", "content": TASK}],
        extra_body={"cogenesis": {"draft_tokens": 4}} if mode == "cogenesis-logits" else None,
    )
    assert answer.model_extra["cogenesis"]["degraded"] is False
    received = cloud.bodies()[before:]
    assert received, "the cloud was called"
    ledger = edge.http.get(f"{edge.url}/v1/ledger", params={"limit": 500}).json()
    sent = [e["payload"].encode() for e in ledger["data"]][: ledger["total"] - ledger_before]
    # The ledger holds exactly the bytes the cloud received, no more and no less
    # (including the edge's own GET /v1/info, which carries no user).
    assert sorted(sent) == sorted(received)
    assert_no_canary(cloud_view(edge, received), canaries)


def test_canary_check_detects_a_leak(edge, cloud) -> None:
    """The detector itself works: a canary in the task title is visible when unguarded."""
    tag = uuid.uuid4().hex[:6]
    body, canaries = canary_profile(tag)
    user = edge.http.post(f"{edge.url}/v1/profiles", json=body, timeout=30).json()["id"]
    before = len(cloud.bodies())
    client_for(edge).chat.completions.create(
        model="cogenesis-sketch",
        user=user,
        max_tokens=4,
        messages=[{"role": "user", "content": f"Write to {canaries[0]}: a short note."}],
        extra_body={"cogenesis": {"guard_policy": "off"}},
    )
    with pytest.raises(AssertionError, match="canaries reached the cloud"):
        assert_no_canary(cloud_view(edge, cloud.bodies()[before:]), canaries)
