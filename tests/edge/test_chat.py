"""The edge agent's OpenAI-compatible endpoint, called by the official openai client."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.servers import free_port, silent_port


def make_profile(edge, **overrides) -> str:
    body = {
        "name": "Marisol Okonkwo-Tran",
        "age": "41",
        "occupation": "Marine biologist",
        "location": "Halifax, Nova Scotia",
        "writing_style": "Warm, precise, fond of tidal metaphors",
        "private_information": "Sings in a sea-shanty choir every Thursday",
        "history": [
            {"title": "Field note", "text": "The kelp forest off Peggy's Cove was quiet today."}
        ],
    }
    body.update(overrides)
    reply = edge.http.post(f"{edge.url}/v1/profiles", json=body, timeout=30)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def client_for(edge) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=edge.admin_key, max_retries=0)


TASK = "Write a short thank-you note to a colleague: thank them for help with a report."


@pytest.mark.parametrize("mode", ["local", "cogenesis-sketch", "cogenesis-logits"])
def test_each_mode_answers_through_the_openai_client(edge, mode) -> None:
    user = make_profile(edge)
    reply = client_for(edge).chat.completions.create(
        model=mode, user=user, max_tokens=16, messages=[{"role": "user", "content": TASK}]
    )
    text = reply.choices[0].message.content
    report = reply.model_extra["cogenesis"]
    assert text.strip()
    assert report["mode"] == mode
    assert report["degraded"] is False, report.get("degraded_reason")
    assert 0 < report["completion_tokens"] <= 16
    if mode == "local":
        assert report["cloud_calls"] == 0 and report["bytes_up"] == 0
    else:
        assert report["cloud_calls"] >= 1 and report["bytes_up"] > 0
    if mode == "cogenesis-sketch":
        assert report["sketch_points"], "the cloud's outline is reported"


@pytest.mark.parametrize("mode", ["local", "cogenesis-sketch", "cogenesis-logits"])
def test_streaming_yields_the_same_text_as_a_plain_call(edge, mode) -> None:
    user = make_profile(edge)
    client = client_for(edge)
    messages = [{"role": "user", "content": TASK}]
    plain = client.chat.completions.create(model=mode, user=user, max_tokens=12, messages=messages)
    pieces, finish = [], None
    for chunk in client.chat.completions.create(
        model=mode, user=user, max_tokens=12, messages=messages, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
            last = chunk
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish in ("stop", "length")
    assert last.model_extra["cogenesis"]["mode"] == mode


def test_a_returning_user_reuses_the_cached_private_prefix(edge) -> None:
    # A name no other test uses: the model pool, and so its prefix cache, is shared.
    user = make_profile(edge, name=f"Ada {uuid.uuid4().hex[:8]}")
    client = client_for(edge)
    messages = [{"role": "user", "content": TASK}]
    first = client.chat.completions.create(
        model="local", user=user, max_tokens=4, messages=messages
    )
    other = make_profile(edge, name="Someone Else", location="Oslo")
    client.chat.completions.create(model="local", user=other, max_tokens=4, messages=messages)
    again = client.chat.completions.create(
        model="local", user=user, max_tokens=4, messages=messages
    )
    cold = first.model_extra["cogenesis"]
    warm = again.model_extra["cogenesis"]
    # Cold reuses at most the text every private prompt here starts with (the pool lends
    # the context that shares most: the instructions, up to the profile's name); warm
    # reuses the whole profile.
    assert cold["prefix_cached_tokens"] < 80
    assert warm["prefix_cached_tokens"] > cold["prefix_cached_tokens"] + 40
    assert again.choices[0].message.content == first.choices[0].message.content


def test_changing_a_profile_invalidates_its_cached_prefix(edge) -> None:
    user = make_profile(edge, name=f"Bo {uuid.uuid4().hex[:8]}")
    client = client_for(edge)
    messages = [{"role": "user", "content": TASK}]
    client.chat.completions.create(model="local", user=user, max_tokens=2, messages=messages)
    warm = client.chat.completions.create(model="local", user=user, max_tokens=2, messages=messages)
    reply = edge.http.patch(
        f"{edge.url}/v1/profiles/{user}", json={"writing_style": "Terse and dry"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    after = client.chat.completions.create(
        model="local", user=user, max_tokens=2, messages=messages
    )
    # The profile changed: only the text before the changed field can be reused.
    reused_after = after.model_extra["cogenesis"]["prefix_cached_tokens"]
    assert reused_after < warm.model_extra["cogenesis"]["prefix_cached_tokens"] - 20


def test_cloud_down_degrades_to_local_and_is_recorded(start_edge) -> None:
    edge = start_edge(f"http://127.0.0.1:{free_port()}", cloud_retries=0)
    user = make_profile(edge)
    reply = client_for(edge).chat.completions.create(
        model="cogenesis-sketch",
        user=user,
        max_tokens=8,
        messages=[{"role": "user", "content": TASK}],
    )
    report = reply.model_extra["cogenesis"]
    assert report["degraded"] is True
    assert report["degraded_reason"].startswith("cloud unreachable")
    assert reply.choices[0].message.content.strip()
    ledger = edge.http.get(f"{edge.url}/v1/ledger", params={"user": user}).json()
    assert ledger["total"] == 1
    assert ledger["data"][0]["status"] == "error"


@pytest.mark.parametrize("mode", ["cogenesis-sketch", "cogenesis-logits"])
def test_a_hung_cloud_degrades_within_the_timeout(start_edge, mode) -> None:
    with silent_port() as hung:
        edge = start_edge(hung, cloud_timeout_s=1.5, cloud_retries=0)
        user = make_profile(edge)
        with httpx.Client(timeout=60, headers=edge.headers()) as client:
            reply = client.post(
                f"{edge.url}/v1/chat/completions",
                json={
                    "model": mode,
                    "user": user,
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": TASK}],
                },
            )
    assert reply.status_code == 200, reply.text
    report = reply.json()["cogenesis"]
    assert report["degraded"] is True
    assert "cloud timed out" in report["degraded_reason"]
    assert report["cloud_wait_s"] < 5
