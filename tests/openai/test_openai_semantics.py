"""OpenAI's documented behaviours through the official client: stop, usage, max tokens,
seed, refused and accepted fields, models and aliases. Each plain and streamed."""

from __future__ import annotations

import openai
import pytest

from edge_agent.job import MODES
from tests.openai.conftest import client_for, make_profile

TASK = "Write a short thank-you note to a colleague: thank them for help with a report."
MESSAGES = [{"role": "user", "content": TASK}]


def streamed(client, **body):
    """The text, finish reason and chunks of a streamed completion."""
    chunks = list(client.chat.completions.create(stream=True, **body))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    return text, finish, chunks


def a_stop_spanning_tokens(edge, text: str) -> str:
    """Two words from the middle of `text`: a stop sequence of several tokens."""
    words = text.split(" ")
    assert len(words) > 5, text
    stop = " " + " ".join(words[2:4])
    assert len(edge.services.pool.primary.tokenize(stop)) >= 2
    return stop


@pytest.mark.parametrize("mode", MODES)
def test_stop_ends_the_answer_before_the_stop_text_plain_and_streamed(edge, user, mode) -> None:
    client = client_for(edge, user)  # the user's key names the user: no `user` field
    body = {"model": mode, "max_tokens": 24, "messages": MESSAGES}
    full = client.chat.completions.create(**body).choices[0].message.content
    stop = a_stop_spanning_tokens(edge, full)
    expected = full[: full.index(stop)]

    plain = client.chat.completions.create(stop=[stop, "@@never@@"], **body)
    assert plain.choices[0].message.content == expected
    assert plain.choices[0].finish_reason == "stop"
    text, finish, _ = streamed(client, stop=stop, **body)
    assert (text, finish) == (expected, ["stop"])


def test_usage_comes_in_a_last_chunk_without_choices_when_asked(edge, user) -> None:
    client = client_for(edge)
    body = {"model": "local", "user": user, "max_tokens": 8, "messages": MESSAGES}
    plain = client.chat.completions.create(**body)
    text, finish, chunks = streamed(client, stream_options={"include_usage": True}, **body)
    assert text == plain.choices[0].message.content and finish == ["length"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == plain.usage.completion_tokens == 8
    assert last.usage.prompt_tokens == plain.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + 8
    assert all(c.usage is None for c in chunks[:-1])
    _, _, without = streamed(client, **body)
    assert all(c.choices for c in without)  # no usage chunk unless asked


def test_max_completion_tokens_and_max_tokens_bound_the_answer(edge, user) -> None:
    client = client_for(edge)
    for field in ("max_tokens", "max_completion_tokens"):
        reply = client.chat.completions.create(
            model="local", user=user, messages=MESSAGES, **{field: 5}
        )
        assert reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"


def test_a_seed_makes_sampling_repeatable(edge, user) -> None:
    client = client_for(edge)
    body = {"model": "local", "user": user, "max_tokens": 12, "messages": MESSAGES}
    first = client.chat.completions.create(temperature=1.0, seed=7, **body)
    again = client.chat.completions.create(temperature=1.0, seed=7, **body)
    text, _, _ = streamed(client, temperature=1.0, seed=7, **body)
    assert first.choices[0].message.content == again.choices[0].message.content == text


REFUSED = {
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "response_format": {"type": "json_object"},
    "logprobs": True,
    "n": 2,
    "logit_bias": {"42": 5},
    "presence_penalty": 0.5,
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("field", sorted(REFUSED))
def test_fields_the_edge_cannot_honour_are_refused_by_name(edge, user, field, stream) -> None:
    client = client_for(edge)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="local", user=user, messages=MESSAGES, stream=stream, **{field: REFUSED[field]}
        )
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == field, caught.value.body


@pytest.mark.parametrize("stream", [False, True])
def test_neutral_values_are_accepted_and_unknown_fields_refused(edge, user, stream) -> None:
    client = client_for(edge)
    neutral = client.chat.completions.create(
        model="local",
        user=user,
        messages=MESSAGES,
        max_tokens=4,
        stream=stream,
        presence_penalty=0,
        frequency_penalty=0,
        metadata={"app": "test"},
        store=False,
        parallel_tool_calls=False,
        response_format={"type": "text"},
        n=1,
    )
    if stream:
        assert [c for c in neutral if c.choices and c.choices[0].finish_reason]
    else:
        assert neutral.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="local", user=user, messages=MESSAGES, extra_body={"temprature": 0.2}
        )
    assert caught.value.body["param"] == "temprature"


def test_the_model_list_describes_each_mode_and_an_alias_picks_one(start_edge, cloud) -> None:
    edge = start_edge(cloud.url, model_aliases="gpt-4o-mini=cogenesis-sketch")
    client = client_for(edge)
    models = {m.id: m for m in client.models.list().data}
    assert set(MODES) <= set(models) and "gpt-4o-mini" in models
    assert all(m.model_extra["description"] for m in models.values())
    assert "cogenesis-sketch" in models["gpt-4o-mini"].model_extra["description"]
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    user = make_profile(edge)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", user=user, max_tokens=6, messages=MESSAGES
    )
    assert reply.model_extra["cogenesis"]["mode"] == "cogenesis-sketch"
    assert reply.model_extra["cogenesis"]["sketch_points"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", user=user, messages=MESSAGES)
