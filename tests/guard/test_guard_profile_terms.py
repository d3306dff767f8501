"""The user's own deny-list: names, places and private phrases from the profile."""

from __future__ import annotations

import json
from collections.abc import Callable

from edge_agent.guard import PrivacyGuard, profile_terms
from edge_agent.guard.terms import phrase_terms
from edge_agent.store import UserContext

CHARITY_TASK = (
    "Design an invitation for the charity event: use your bi-monthly volunteering work "
    "to explain why guests should donate."
)


def test_private_info_phrases_match_across_word_order_and_inflection(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(private="Volunteers bi-monthly at the children's hospital charity")

    result = guard.inspect(CHARITY_TASK, ctx)

    assert result.text == (
        "Design an invitation for the charity event: use your <PRIVATE> work "
        "to explain why guests should donate."
    )
    assert [(f.entity_type, f.source) for f in result.findings] == [("PRIVATE", "profile")]


def test_a_private_place_is_caught_but_its_words_alone_are_not(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(private="Volunteers at local animal shelter on weekends")

    hit = guard.inspect("Write a thank-you card for the animal shelters in town.", ctx)
    miss = guard.inspect("Write a poem about a lost animal finding shelter from rain.", ctx)

    assert hit.text == "Write a thank-you card for the <PRIVATE> in town."
    assert miss.findings == []


def test_common_words_in_private_info_are_not_redacted(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(
        private="Checks work email every evening; Uses a private notes app for daily plans"
    )
    task = "Write an email to my team about work schedules and daily plans for next week."

    assert guard.inspect(task, ctx).findings == []


def test_the_users_name_and_city_are_caught(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(name="Miles Okafor", location="Spokane, Washington")

    result = guard.inspect("Sign it from Miles Okafor, proud resident of spokane.", ctx)
    first_name = guard.inspect("Miles will run five miles for charity.", ctx)

    assert result.text == "Sign it from <PERSON>, proud resident of <LOCATION>."
    assert {f.source for f in result.findings} == {"profile"}  # the city even in lowercase
    # A single name part matches as written: "miles" the distance is an ordinary word.
    assert first_name.text == "<PERSON> will run five miles for charity."


def test_names_from_private_info_and_history_are_caught(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(
        private="Her younger brother Tobias is studying law in Leeds",
        history=(
            (
                "Newsletter",
                "This month I worked with Marcus Ortega on the Riverside gala. "
                "Thanks again to everyone who came.",
            ),
        ),
    )

    result = guard.inspect("Write a birthday card for Tobias and invite Marcus Ortega.", ctx)

    assert result.text == "Write a birthday card for <PERSON> and invite <PERSON>."
    # Presidio finds them too; on a tie the profile term wins, which proves it matched.
    assert {f.source for f in result.findings} == {"profile"}
    terms = {(t.text, t.origin) for t in guard.terms_for(ctx)}
    assert {("Tobias", "Privacy_info"), ("Leeds", "Privacy_info")} <= terms
    assert ("Marcus Ortega", "history") in terms


def test_without_a_profile_only_presidio_runs(guard: PrivacyGuard) -> None:
    result = guard.inspect(CHARITY_TASK, None)

    assert result.findings == [] and result.text == CHARITY_TASK


def test_block_policy_blocks_on_profile_terms(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    result = guard.inspect(CHARITY_TASK, make_ctx(), policy="block")

    assert result.blocked and result.text == ""
    assert result.counts() == {"PRIVATE": 1}


def test_terms_follow_the_profile_version(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    task = "Write a blog post about training for the Lisbon marathon with my running club."
    before = make_ctx(private="Keeps a gratitude journal", version=1)
    after = make_ctx(private="Trains with a running club for the Lisbon marathon", version=2)

    assert "<PRIVATE>" not in guard.inspect(task, before).text
    assert guard.inspect(task, after).text == (
        "Write a blog post about training for the <PRIVATE> with my <PRIVATE>."
    )
    assert before.cache_key != after.cache_key
    assert guard.matcher_for(after) is guard.matcher_for(after)  # built once, then cached


def test_phrase_terms_keep_distinctive_pairs_only() -> None:
    terms = phrase_terms("Volunteers bi-monthly at the children's hospital charity", "Privacy_info")

    pairs = {tuple(sorted(term.stems)) for term in terms}

    assert ("bimonth", "volunteer") in pairs
    assert ("children", "hospital") in pairs and ("charity", "hospital") in pairs
    assert all(term.entity_type == "PRIVATE" for term in terms)
    assert phrase_terms("Recently started work on a new daily plan", "Privacy_info") == []


def test_profile_terms_without_spacy_still_cover_name_location_and_phrases(
    make_ctx: Callable[..., UserContext],
) -> None:
    terms = profile_terms(make_ctx(), nlp=None)

    literals = {(t.text, t.entity_type) for t in terms if t.kind == "literal"}
    assert {("Dana Whitfield", "PERSON"), ("Dana", "PERSON"), ("Whitfield", "PERSON")} <= literals
    assert {("Portland, Oregon", "LOCATION"), ("Portland", "LOCATION")} <= literals
    assert any(t.kind == "phrase" for t in terms)


def test_verify_payload_finds_profile_terms_in_a_json_payload(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx()
    payload = json.dumps(
        {"protocol_version": "2", "instruction": CHARITY_TASK + " Love, Dana", "max_points": 6}
    ).encode()

    hits = guard.verify_payload(payload.decode(), ctx)

    assert [(h.field, h.entity_type, h.text, h.origin) for h in hits] == [
        ("instruction", "PRIVATE", "bi-monthly volunteering", "Privacy_info"),
        ("instruction", "PERSON", "Dana", "Name"),
    ]
    redacted = json.dumps({"instruction": guard.inspect(CHARITY_TASK, ctx).text})
    assert guard.verify_payload(redacted, ctx) == []


def test_verify_payload_reads_escaped_json_and_plain_text(
    guard: PrivacyGuard, make_ctx: Callable[..., UserContext]
) -> None:
    ctx = make_ctx(private="Volunteers at the children\u2019s hospital")
    escaped = json.dumps({"prompt": "Thank the children\u2019s hospital team"}, ensure_ascii=True)

    assert "\\u2019" in escaped
    assert [h.text for h in guard.verify_payload(escaped, ctx)] == ["children\u2019s hospital"]
    assert [h.field for h in guard.verify_payload("not json: Dana", ctx)] == [""]
