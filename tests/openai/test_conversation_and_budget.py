"""The whole conversation is private context; the private prompt always fits; a client
that hangs up frees its worker. Through the official openai client, both ends real."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from edge_agent.job import MODES
from tests.openai.conftest import client_for, make_profile

DOG = "Biscottivortigern"  # canaries: words no model or guard knows
AUNT = "Zephyrine Quackenbush"
PROJECT = "Operation Moonquill"


def ledger_text(edge) -> str:
    reply = httpx.get(
        f"{edge.url}/v1/ledger", params={"limit": 500}, headers=edge.headers(), timeout=30
    )
    return json.dumps(reply.json())


@pytest.mark.parametrize("mode", MODES)
def test_earlier_turns_and_system_messages_never_leave(edge, cloud, user, mode) -> None:
    before = len(cloud.bodies())
    messages = [
        {"role": "system", "content": f"The user's aunt is {AUNT}; keep it private."},
        {"role": "user", "content": f"My dog is called {DOG} and he is 11."},
        {"role": "assistant", "content": "What a lovely name!"},
        {"role": "developer", "content": f"The user works on '{PROJECT}'."},
        {
            "role": "user",
            "content": f"Write a birthday poem for {DOG}: mention aunt {AUNT} and {PROJECT}",
        },
    ]
    reply = client_for(edge).chat.completions.create(
        model=mode, user=user, max_tokens=24, messages=messages
    )
    report = reply.model_extra["cogenesis"]
    assert report["budget"]["turns_used"] == 2 and report["budget"]["turns_dropped"] == 0
    sent = b"\n".join(cloud.bodies()[before:]).decode("utf-8", errors="replace")
    if mode != "local":
        assert report["cloud_calls"] >= 1 and sent
    for canary in (DOG, AUNT, "Zephyrine", "Quackenbush", "Moonquill"):
        assert canary not in sent and canary not in ledger_text(edge)
    if mode == "cogenesis-sketch":
        assert "<" in sent  # the dog's name in the title became a placeholder


def test_the_earlier_turns_reach_the_small_model(edge, user) -> None:
    client = client_for(edge)
    task = {"role": "user", "content": "Write one line about my dog."}
    alone = client.chat.completions.create(model="local", user=user, max_tokens=4, messages=[task])
    earlier = [
        {"role": "system", "content": "Answer warmly."},
        {"role": "user", "content": f"My dog is called {DOG}."},
        {"role": "assistant", "content": "Noted."},
    ]
    told = client.chat.completions.create(
        model="local", user=user, max_tokens=4, messages=[*earlier, task]
    )
    assert told.usage.prompt_tokens > alone.usage.prompt_tokens + 10


@pytest.mark.parametrize("mode", MODES)
def test_a_profile_with_huge_fields_answers_in_every_mode(edge, mode) -> None:
    huge = "tidepool " * 440  # 3,960 characters, 8 of them
    user = make_profile(
        edge,
        name="Hugo Vastfield",
        personal_traits=huge,
        writing_style=huge,
        private_information=huge,
        smart_device_usage=huge,
        assistant_usage=huge,
        occupation="Archivist",
        extra={"Hobbies": huge, "Pets": huge, "Travel": huge},
        history=[{"title": f"Note {i}", "text": huge * 4} for i in range(20)],
    )
    reply = client_for(edge).chat.completions.create(
        model=mode,
        user=user,
        max_tokens=12,
        messages=[{"role": "user", "content": "Write a two-line poem: about the sea"}],
    )
    budget = reply.model_extra["cogenesis"]["budget"]
    assert reply.choices[0].message.content.strip()
    assert budget["fields_clipped"] or budget["fields_dropped"]
    assert budget["writings_available"] == 20 and budget["writings_clipped"] >= 1
    assert budget["prompt_tokens"] <= budget["budget_tokens"]


def test_the_relevant_writing_is_chosen_when_it_comes_last_of_sixty(edge) -> None:
    history = [
        {"title": f"Budget memo {i}", "text": f"Spreadsheet totals for quarter {i}."}
        for i in range(59)
    ]
    history.append(
        {
            "title": "Beekeeping newsletter",
            "text": "The hives wintered well; the queen in hive two is laying again.",
        }
    )
    user = make_profile(edge, name="Bea Hollis", history=history)
    reply = client_for(edge).chat.completions.create(
        model="local",
        user=user,
        max_tokens=4,
        messages=[{"role": "user", "content": "Write an update for my beekeeping club"}],
    )
    budget = reply.model_extra["cogenesis"]["budget"]
    assert budget["writings_available"] == 60 and budget["writings_chosen"][0] == 59


LONG_TASK = "Count from 1 to 2000, one number per line, with no other text."


@pytest.mark.parametrize("mode", ["local", "cogenesis-logits"])
def test_dropped_streams_free_their_workers_at_once(edge, user, mode) -> None:
    pool = edge.services.pool
    assert len(pool.models) == 2
    client = client_for(edge, timeout=120)
    body = {"model": mode, "user": user, "max_tokens": 1500}
    started = []
    for _ in range(2):
        stream = client.chat.completions.create(
            stream=True, messages=[{"role": "user", "content": LONG_TASK}], **body
        )
        pieces = 0
        for chunk in stream:
            pieces += bool(chunk.choices and chunk.choices[0].delta.content)
            if pieces >= 3:
                break
        started.append(stream)
    for stream in started:
        stream.close()  # the client hangs up mid-answer
    dropped = time.perf_counter()
    # A third request starts at once: both workers are free within a token or two.
    third = client.chat.completions.create(
        stream=True,
        messages=[{"role": "user", "content": "Say hi"}],
        **{**body, "max_tokens": 2, "model": "local"},
    )
    first = next(c for c in third if c.choices and c.choices[0].delta.content is not None)
    waited = time.perf_counter() - dropped
    list(third)
    assert first is not None and waited < 10, f"the third request waited {waited:.1f} s"
    deadline = time.monotonic() + 5
    while pool.idle < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.idle == 2, "a dropped stream still holds a worker"
    if mode == "cogenesis-logits":
        deletes = [e for e in json.loads(ledger_text(edge))["data"] if e.get("method") == "DELETE"]
        assert deletes, "the cloud session of a dropped stream was not closed"


def test_a_plain_request_whose_client_goes_away_is_stopped(edge, user) -> None:
    pool = edge.services.pool
    gone = threading.Event()

    def hang_up() -> None:
        try:
            httpx.post(
                f"{edge.url}/v1/chat/completions",
                json={
                    "model": "local",
                    "user": user,
                    "max_tokens": 1500,
                    "messages": [{"role": "user", "content": LONG_TASK}],
                },
                headers=edge.headers(),
                timeout=2.0,  # the client gives up after 2 s and closes the connection
            )
        except httpx.TimeoutException:
            gone.set()

    thread = threading.Thread(target=hang_up)
    thread.start()
    thread.join()
    assert gone.is_set(), "the long answer finished within 2 s; the test proves nothing"
    deadline = time.monotonic() + 5
    while pool.idle < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.idle == 2, "the abandoned request still holds a worker"
