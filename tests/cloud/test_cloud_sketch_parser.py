"""parse_points never fails and returns clean, capped, deduplicated points."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_service.sketch import OutlineStream, outline_complete, parse_points
from shared_protocol import limits


def test_numbered_list_with_intro_and_outro_keeps_only_items() -> None:
    text = (
        "Sure! Here is an outline:\n1. Open with a hook\n2) State the thesis\n3. Close\n"
        "Hope it helps!"
    )
    assert parse_points(text, 6) == ["Open with a hook", "State the thesis", "Close"]


def test_bullets_and_markdown_are_stripped() -> None:
    text = "## Outline\n- **Benefits**: better *sleep*\n* `Energy` boost\n• [Mood](http://x.y) lift"
    assert parse_points(text, 6) == ["Benefits: better sleep", "Energy boost", "Mood lift"]


def test_duplicates_and_junk_lines_are_dropped() -> None:
    text = "1. Sleep better\n2. sleep better!\n3. **\n4. -\n5. ok\n6. Eat well"
    assert parse_points(text, 6) == ["Sleep better", "Eat well"]


def test_points_are_capped_in_number_and_length() -> None:
    text = "\n".join(f"{i}. point number {i} " + "word " * 200 for i in range(1, 20))
    points = parse_points(text, 4)
    assert len(points) == 4
    assert all(len(p) <= limits.MAX_POINT_CHARS for p in points)
    assert points[0].startswith("point number 1") and points[0].endswith("…")


def test_prose_falls_back_to_sentences() -> None:
    text = "Start with the problem. Then describe the fix! Finally, thank the reader."
    assert parse_points(text, 2) == ["Start with the problem.", "Then describe the fix!"]


def test_cut_off_output_drops_the_unfinished_last_item() -> None:
    text = "1. First point\n2. Second point\n3. Third point that was cut in the mid"
    assert parse_points(text, 6, cut_off=True) == ["First point", "Second point"]


def test_cut_off_output_keeps_a_last_item_whose_line_was_finished() -> None:
    text = "1. First point\n2. Second point\n"
    assert parse_points(text, 6, cut_off=True) == ["First point", "Second point"]


LINES = ["1. Intro", "2) Body", "- Close", "Some prose. More.", "", "   - nested", "## Head"]
LINES += ["```", "1. Intro", "**", "3. A point cut in the mid", "<|im_end|>"]


@given(
    lines=st.lists(st.sampled_from(LINES), max_size=10),
    line_end=st.booleans(),
    cut_off=st.booleans(),
)
def test_streamed_points_are_exactly_the_parsed_points(
    lines: list[str], line_end: bool, cut_off: bool
) -> None:
    text = "\n".join(lines) + ("\n" if line_end else "")
    outline = OutlineStream(4, fallback="Write the letter.")
    streamed: list[str] = []
    for end in (i + 1 for i, char in enumerate(text) if char == "\n"):
        streamed += outline.finished(text[:end])  # the engine's hint, at each line end
    streamed += outline.rest(text, cut_off=cut_off)
    assert streamed == parse_points(text, 4, "Write the letter.", cut_off=cut_off)


@pytest.mark.parametrize("text", ["", "   \n\n", "```\n```", "**", "1.\n2.\n-", "<|im_end|>"])
def test_nothing_usable_gives_the_fallback(text: str) -> None:
    assert parse_points(text, 5, fallback="Write to the landlord.") == ["Write to the landlord."]
    assert len(parse_points(text, 5)) == 1


def test_code_fences_and_nested_bullets() -> None:
    text = "```markdown\n1. Intro\n   - background\n2. Body\n```"
    assert parse_points(text, 6) == ["Intro", "background", "Body"]


def test_nested_markers_are_stripped_so_duplicates_collapse() -> None:
    text = "1. Thank the reader\n2. Offer help\n\nAgain:\n* 1. Thank the reader\n* 2) Offer help"
    assert parse_points(text, 6) == ["Thank the reader", "Offer help"]


@pytest.mark.parametrize(
    ("text", "done"),
    [
        ("1. A point\n2. Another", False),  # the last line is unfinished
        ("1. A point\n2. Another point\n", True),  # max_points=2 distinct items
        ("Here is the outline:\n1. A point\n", False),  # prose before items is fine
        ("1. A point\n   more about it\n", False),  # an indented continuation
        ("1. A point\n\nHere is the text:\n", True),  # prose after items
        ("1. Same point\n2. Same point\n", True),  # repetition loop
    ],
)
def test_outline_complete_stops_generation_at_the_end_of_the_list(text: str, done: bool) -> None:
    assert outline_complete(text, 2 if "Another" in text else 3) is done
