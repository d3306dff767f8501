"""The conversation's terms join the deny-list of one request, with numbered placeholders."""

from __future__ import annotations

from edge_agent.guard.conversation import conversation_terms
from edge_agent.guard.placeholders import Placeholders
from edge_agent.guard.request import RequestGuard


def test_names_numbers_and_quotes_of_earlier_turns_are_terms(guard) -> None:
    texts = [
        "My dog is called Biscuit and we live on Harrow Lane.",
        "Our flat is number 42 and the project is called 'Blue Heron'.",
    ]
    found = {t.text for t in conversation_terms(texts, guard.analyzer.nlp_engine.nlp["en"])}
    assert {"Biscuit", "42", "Blue Heron"} <= found
    assert "Harrow Lane" in found or "Harrow" in found


def test_a_name_from_an_earlier_turn_is_redacted_in_the_title(guard, make_ctx) -> None:
    ctx = make_ctx()
    request = RequestGuard.of(guard, ctx, "redact", ["Our cat is named Pumpernickel."])
    result = request.inspect("Write a birthday card for Pumpernickel")
    assert "Pumpernickel" not in result.text
    assert "<" in result.text and result.findings[0].source == "conversation"


def test_the_same_value_is_one_placeholder_across_a_request(guard, make_ctx) -> None:
    ctx = make_ctx()
    names = Placeholders()
    first = guard.inspect("A note to Dana Whitfield", ctx, "redact", placeholders=names)
    second = guard.inspect("Dana Whitfield says hi", ctx, "redact", placeholders=names)
    placeholder = first.findings[0].replaced_with
    assert placeholder == "<PERSON_1>" and placeholder in second.text
    assert names.restore(second.text) == "Dana Whitfield says hi"


def test_without_placeholders_the_guard_keeps_typed_ones(guard, make_ctx) -> None:
    result = guard.inspect("A note to Dana Whitfield", make_ctx(), "redact")
    assert "<PERSON>" in result.text
