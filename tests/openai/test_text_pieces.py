"""Stop sequences over streamed pieces, numbered placeholders, the conversation's parts."""

from __future__ import annotations

from edge_agent.conversation import Conversation, Turn
from edge_agent.guard.placeholders import Placeholders
from edge_agent.stop_text import StopText


def run_stop(stops, pieces):
    out: list[str] = []
    text = StopText(stops, out.append)
    ended = False
    for piece in pieces:
        if text.feed(piece):
            ended = True
            break
    text.flush()
    return "".join(out), ended


def test_a_stop_sequence_spanning_pieces_ends_the_text_before_it() -> None:
    assert run_stop(["END"], ["Hello E", "N", "D and more"]) == ("Hello ", True)


def test_held_text_that_is_no_stop_after_all_is_passed_on() -> None:
    assert run_stop(["END"], ["Hello E", "NTER"]) == ("Hello ENTER", False)
    assert run_stop(["END"], ["The E"]) == ("The E", False)  # the answer ended: flushed


def test_the_earliest_of_several_stops_wins_and_no_stops_passes_everything() -> None:
    assert run_stop(["\n\n", "b"], ["aa", "ab\n\nc"]) == ("aaa", True)
    assert run_stop([], ["a", "b"]) == ("ab", False)


def test_the_same_value_gets_the_same_placeholder_and_maps_back() -> None:
    names = Placeholders()
    first = names.name("PERSON", "Biscuit")
    assert first == "<PERSON_1>"
    assert names.name("PERSON", "biscuit ") == first
    assert names.name("PERSON", "Rex") == "<PERSON_2>"
    assert names.name("LOCATION", "Leeds") == "<LOCATION_1>"
    assert names.restore("Walk <PERSON_1> and <PERSON_2> in <LOCATION_1>, not <PERSON_9>.") == (
        "Walk Biscuit and Rex in Leeds, not <PERSON_9>."
    )


def test_the_last_user_message_is_the_task_and_the_rest_is_context() -> None:
    chat = Conversation.of(
        [
            ("system", "Be brief."),
            ("user", "My dog is Biscuit."),
            ("assistant", "Lovely name."),
            ("developer", "Use British spelling."),
            ("user", "  Write a poem: about my dog  "),
        ]
    )
    assert chat is not None and chat.task == "Write a poem: about my dog"
    assert chat.system == ("Be brief.", "Use British spelling.")
    assert chat.turns == (Turn("user", "My dog is Biscuit."), Turn("assistant", "Lovely name."))
    assert Conversation.of([("system", "x"), ("user", "  ")]) is None
