"""The judge's rating parser: real junk from a small judge is read as missing, never as a
made-up number; the forms a capable judge writes are read exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from research.judge import RUBRICS, judge_messages, parse_rating

FIXTURES = Path(__file__).parent / "fixtures" / "smollm2_judge_outputs.json"


def test_real_smollm2_judge_outputs_are_parsed_as_hand_read() -> None:
    outputs = json.loads(FIXTURES.read_text(encoding="utf-8"))["outputs"]
    assert len(outputs) >= 20
    for row in outputs:
        assert parse_rating(row["text"]) == row["rating"], row["text"]


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("The answer is vivid and personal.\nRating: [[7]]", 7.0),
        ("Rating: [[ 8 ]]", 8.0),
        ("[[6/10]]", 6.0),
        ("[[7.5]]", 7.5),
        ("First I thought [[3]], but on reflection [[8]]", 8.0),
        ("Rating: 9", 9.0),
        ("**Rating:** 4", 4.0),
        ("Score: [5]", 5.0),
        ("I would give it 7/10.", 7.0),
        ("Overall, 6 out of 10.", 6.0),
        ("rating: 10/10", 10.0),
        ("[[1]]", 1.0),
    ],
)
def test_ratings_in_the_forms_judges_write_are_read(text: str, rating: float) -> None:
    assert parse_rating(text) == rating


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Rating: [[N]]",  # the format echoed back
        "Give a whole number from 1 (worst) to 10 (best).",
        "[[1-10]]",
        "Rating: 1-10",
        "A score of 10 is a perfect score, and a score of 1 is a perfect score.",
        "on a scale of 1 to 10 out of 10",
        "between 1 and 10",
        "Rating: 0",
        "[[11]]",
        "Rating: 100",
        "Published 2017/10/3, ten pages.",
        "World in 10 Seconds",
    ],
)
def test_text_without_a_rating_is_missing_not_a_number(text: str) -> None:
    assert parse_rating(text) is None


def test_blind_rubric_hides_the_profile_and_history() -> None:
    profile = "Name: Theo Lindqvist\nPrivacy_info: Saving for a cabin"
    history = [("Old post", "Bees in winter")]
    prompts = {
        rubric: judge_messages(rubric, "Write a note", "Hello", profile, history)[1]["content"]
        for rubric in RUBRICS
    }
    assert "Theo Lindqvist" in prompts["overall"] and "Bees in winter" in prompts["personal"]
    assert "Theo" not in prompts["overall_blind"] and "Bees" not in prompts["overall_blind"]
    assert all("[[N]]" in p and "Write a note" in p for p in prompts.values())
