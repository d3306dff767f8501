"""The budgeted private prompt with the real small model's tokenizer and chat template."""

from __future__ import annotations

import pytest

from edge_agent.conversation import Conversation, Turn
from edge_agent.prompt_budget import BudgetLimits, PromptTooLong, assemble
from edge_agent.prompts import CLIPPED
from edge_agent.slm import SmallModel
from edge_agent.store.context import UserContext
from shared_protocol.defaults import default_gguf_path


@pytest.fixture(scope="module")
def model() -> SmallModel:
    return SmallModel(default_gguf_path(), n_ctx=512)


def context(fields: dict[str, str], history=()) -> UserContext:
    return UserContext("u_budget", "Ada", fields, tuple(history))


def test_a_small_profile_goes_in_whole_with_the_whole_conversation(model) -> None:
    ctx = context({"Name": "Ada Quill", "Location": "Leeds"}, [("Note", "A short note.")])
    chat = Conversation(
        "Write a toast: for my sister",
        system=("Answer in English.",),
        turns=(Turn("user", "My dog is Biscuit."), Turn("assistant", "Noted!")),
    )
    built = assemble(model, ctx, chat, budget=400, ranked=[0])
    roles = [m["role"] for m in built.messages]
    assert roles == ["system", "system", "user", "assistant", "user"]
    assert "Ada Quill" in built.messages[0]["content"]
    assert "A short note." in built.messages[-1]["content"]
    assert built.messages[-1]["content"].endswith("Task: Write a toast: for my sister")
    report = built.report
    assert (report.turns_used, report.turns_dropped) == (2, 0)
    assert (report.writings_used, report.writings_available) == (1, 1)
    assert report.fields_clipped == [] and report.fields_dropped == []
    assert len(built.tokens) == report.prompt_tokens <= 400
    assert built.tokens == model.tokenize(model.render_chat(built.messages))


def test_huge_fields_are_clipped_and_said_to_be(model) -> None:
    ctx = context({f"Field_{i}": "word " * 1000 for i in range(8)})
    built = assemble(model, ctx, Conversation("Write a haiku"), budget=300)
    assert len(built.tokens) <= 300
    report = built.report
    assert report.fields_clipped or report.fields_dropped
    assert set(report.fields_clipped) | set(report.fields_dropped) == {
        f"Field_{i}" for i in range(8)
    }
    assert CLIPPED.strip() in built.messages[0]["content"]


def test_the_oldest_turns_are_dropped_first(model) -> None:
    turns = tuple(Turn("user", f"Turn number {i}: " + "blah " * 40) for i in range(12))
    built = assemble(
        model, context({"Name": "Ada"}), Conversation("Go on", turns=turns), budget=400
    )
    report = built.report
    assert report.turns_dropped > 0 and report.turns_used > 0
    kept = [m["content"] for m in built.messages if m["role"] == "user"][:-1]
    assert kept[-1].startswith("Turn number 11") and not any("number 0:" in k for k in kept)
    assert report.turns_used + report.turns_dropped == 12


def test_writings_follow_the_ranking_within_the_limit(model) -> None:
    history = [(f"Title {i}", f"Writing {i} text.") for i in range(10)]
    built = assemble(
        model,
        context({"Name": "Ada"}, history),
        Conversation("Write"),
        budget=480,
        ranked=[9, 3, 5, 0, 1],
        limits=BudgetLimits(writings=3),
    )
    content = built.messages[-1]["content"]
    assert [content.index(f"Writing {i} ") for i in (9, 3, 5)] == sorted(
        content.index(f"Writing {i} ") for i in (9, 3, 5)
    )
    assert "Writing 0 " not in content
    assert (built.report.writings_used, built.report.writings_available) == (3, 10)


def test_a_task_longer_than_the_context_is_refused(model) -> None:
    with pytest.raises(PromptTooLong, match="tokens"):
        assemble(model, context({}), Conversation("word " * 600), budget=300)
