"""The cloud's OpenAI-compatible chat route on the real SmolLM2 model, called with the
official OpenAI client and with raw HTTP: plain and streaming, stop strings, seeds,
usage, auth, limits and OpenAI-shaped errors."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from cloud_service.engines.llamacpp import CHAT_KEY
from cloud_service.engines.streaming import ChatStream
from cloud_service.testing import RunningCloud as Cloud
from tests.cloud.conftest import TOKEN
from tests.cloud.test_cloud_load import wait_until

pytestmark = pytest.mark.slow  # the real model behind a real server

HAIKU = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Write a haiku about the sea."},
]


@pytest.fixture(scope="module")
def client(cloud: Cloud) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cloud.base_url}/v1", api_key=TOKEN, max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI, cloud: Cloud) -> None:
    assert [m.id for m in client.models.list().data] == [cloud.engine.model_id]


def test_greedy_completion_matches_the_engine_and_reports_usage(
    client: openai.OpenAI, cloud: Cloud
) -> None:
    reply = client.chat.completions.create(
        model=cloud.engine.model_id, messages=HAIKU, max_tokens=12, temperature=0
    )
    choice = reply.choices[0]
    expected = cloud.engine.chat("Be brief.", "Write a haiku about the sea.", 12)
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text and expected.text.strip()
    assert reply.usage.prompt_tokens == expected.prompt_tokens
    assert reply.usage.completion_tokens == expected.completion_tokens == 12
    assert choice.finish_reason == "length"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_streaming_yields_the_same_text_in_pieces_then_usage(
    client: openai.OpenAI, cloud: Cloud
) -> None:
    args = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**args).choices[0].message.content
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    assert len([p for p in pieces if p]) > 1
    assert "".join(p or "" for p in pieces) == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_stop_string_ends_the_answer_before_it(client: openai.OpenAI, cloud: Cloud) -> None:
    args = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 24, "temperature": 0}
    free = client.chat.completions.create(**args).choices[0].message.content
    # A stop string taken from the middle of the free answer: the answer ends before it.
    cut = free.index(" ", len(free) // 3)
    stop = free[cut : cut + 4]
    stopped = client.chat.completions.create(**args, stop=[stop]).choices[0]
    assert stopped.finish_reason == "stop"
    assert free.startswith(stopped.message.content)
    assert stop not in stopped.message.content
    assert len(stopped.message.content) <= cut


def test_seeded_sampling_repeats_and_differs_from_another_seed(
    client: openai.OpenAI, cloud: Cloud
) -> None:
    args = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 16, "temperature": 1}
    texts = {
        seed: [client.chat.completions.create(**args, seed=seed).choices[0].message.content]
        for seed in (1, 2, 3)
    }
    again = client.chat.completions.create(**args, seed=1).choices[0].message.content
    assert again == texts[1][0]
    assert len({t[0] for t in texts.values()}) > 1


def test_a_multi_turn_conversation_goes_through_the_template(
    client: openai.OpenAI, cloud: Cloud
) -> None:
    messages = [
        *HAIKU,
        {"role": "assistant", "content": "Waves fold into foam."},
        {"role": "user", "content": [{"type": "text", "text": "Another one, please."}]},
    ]
    reply = client.chat.completions.create(
        model=cloud.engine.model_id, messages=messages, max_tokens=4, temperature=0
    )
    single = client.chat.completions.create(
        model=cloud.engine.model_id, messages=HAIKU, max_tokens=4, temperature=0
    )
    assert reply.usage.prompt_tokens > single.usage.prompt_tokens + 8


def test_the_route_needs_the_token(cloud: Cloud) -> None:
    response = httpx.post(f"{cloud.base_url}/v1/chat/completions", json={"model": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_oversized_body_gets_413(tight_cloud: Cloud) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = tight_cloud.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "gpt-4"}, 404, "model"),
        ({"n": 2}, 400, "n"),
        ({"tools": []}, 400, "tools"),
        ({"temperature": 3}, 400, "temperature"),
        ({"response_format": {"type": "json_object"}}, 400, "response_format.type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role"),
        ({"messages": []}, 400, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ],
)
def test_unsupported_or_bad_parameters_get_an_openai_error_naming_them(
    cloud: Cloud, change: dict, status: int, param: str
) -> None:
    body = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 2} | change
    response = cloud.client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]
    assert "Traceback" not in response.text


def test_bad_json_and_a_prompt_beyond_the_context_are_client_errors(cloud: Cloud) -> None:
    response = cloud.client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_json"
    assert response.json()["error"]["type"] == "invalid_request_error"
    long = [{"role": "user", "content": "sea " * 5000}]
    response = cloud.client.post(
        "/v1/chat/completions", json={"model": cloud.engine.model_id, "messages": long}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages"


def test_raw_stream_is_server_sent_events_ending_with_done(cloud: Cloud) -> None:
    body = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 3, "stream": True}
    with cloud.client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {e["object"] for e in events} == {"chat.completion.chunk"}


def test_chat_stream_holds_back_a_stop_string_split_across_tokens() -> None:
    pieces = [b"Hello wo", b"rl", b"d! Bye", b" now"]
    stream = ChatStream(
        prompt_tokens=1, tokens=range(4), token_bytes=pieces.__getitem__, budget=10, stop=("world",)
    )
    assert list(stream) == ["Hell", "o "]
    assert stream.finish_reason == "stop" and stream.completion_tokens == 3


def test_chat_stream_joins_utf8_split_across_tokens() -> None:
    data = "café ☕".encode()
    pieces = [data[:4], data[4:6], data[6:8], data[8:]]
    stream = ChatStream(prompt_tokens=1, tokens=range(4), token_bytes=pieces.__getitem__, budget=4)
    assert stream.text() == "café ☕" and stream.finish_reason == "length"


def test_overlapping_requests_get_the_same_answers_as_serial_ones(
    client: openai.OpenAI, cloud: Cloud
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    asks = [
        [{"role": "user", "content": f"Name a colour and a {thing}."}]
        for thing in ("fruit", "river", "bird")
    ]

    def ask(messages: list[dict]) -> str:
        reply = client.chat.completions.create(
            model=cloud.engine.model_id, messages=messages, max_tokens=8, temperature=0
        )
        return reply.choices[0].message.content

    for key in cloud.engine.saved_keys:  # lanes other tests left saved
        if key.startswith(f"{CHAT_KEY}:"):
            cloud.engine.release(key)
    serial = [ask(m) for m in asks]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(ask, asks)) == serial
    # Admission let them in one at a time (one engine slot): all ran in lane 0.
    assert CHAT_KEY in cloud.engine.saved_keys or cloud.engine.saved_keys == []
    assert not [k for k in cloud.engine.saved_keys if k.startswith(f"{CHAT_KEY}:")]


def _assert_shed(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "overloaded" and error["type"] == "server_error"


def test_chats_go_through_the_admission_queue_and_are_shed_past_it(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=0)
    model = cloud.engine.model_id
    long = {"model": model, "messages": HAIKU, "max_tokens": 400, "temperature": 0}
    with cloud.client.stream("POST", "/v1/chat/completions", json=long | {"stream": True}) as held:
        assert held.status_code == 200
        lines = held.iter_lines()
        assert next(lines).startswith("data: ")  # the stream is under way: it holds the slot
        wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 1, timeout=30)
        short = {"model": model, "messages": HAIKU, "max_tokens": 2}
        _assert_shed(cloud.client.post("/v1/chat/completions", json=short))
        _assert_shed(cloud.client.post("/v1/chat/completions", json=short | {"stream": True}))
        sketch = cloud.client.post(
            "/v1/sketch", json={"instruction": "Write about tea.", "max_tokens": 16}
        )
        assert sketch.status_code == 503 and sketch.headers["retry-after"]  # one queue for all
    # The client left mid-stream: the slot (and the stream's lane) come back.
    wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 0, timeout=10)
    reply = openai.OpenAI(base_url=f"{cloud.base_url}/v1", api_key=TOKEN, max_retries=0)
    answer = reply.chat.completions.create(model=model, messages=HAIKU, max_tokens=2)
    assert answer.usage.completion_tokens == 2
    shed = cloud.metric("cogenesis_cloud_admission_events_total", reason="queue_full")
    assert shed == 3


def test_a_chat_is_charged_to_the_tenants_token_quota(start_cloud) -> None:
    cloud = start_cloud(tenant_tokens_per_minute=20)
    body = {"model": cloud.engine.model_id, "messages": HAIKU, "max_tokens": 12}
    assert cloud.client.post("/v1/chat/completions", json=body).status_code == 200
    for stream in (False, True):
        refused = cloud.client.post("/v1/chat/completions", json=body | {"stream": stream})
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
    assert cloud.metric("cogenesis_cloud_engine_active") == 0  # the refused held nothing
