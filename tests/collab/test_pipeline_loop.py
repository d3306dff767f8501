"""Streaming (adaptive) drafts at network distance, on toy models whose steps and round
trips take real (short) time: the answer stays the step-by-step one, and a draft is as
long as what the small model could draft while the last call was out."""

from __future__ import annotations

import time

import pytest

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudUsage
from tests.collab.toys import ToyCloud, ToyModel

PRIVATE = [5, 6, 7, 8, 9, 10, 11]
PUBLIC = [5, 6, 7]
STEP_S = 0.004  # seconds per small-model token


class TimedToyModel(ToyModel):
    """A toy small model that takes STEP_S per evaluated token."""

    def append(self, tokens):
        time.sleep(STEP_S * len(tokens))
        self.timer.seconds += STEP_S * len(tokens)
        return super().append(tokens)


class TimedToyCloud(ToyCloud):
    """A toy cloud whose every call takes a round trip."""

    def __init__(self, rtt_s: float, **kw) -> None:
        super().__init__(**kw)
        self.rtt_s = rtt_s

    def step(self, session_id, req, *, user_id, mode, usage, guard=None):
        time.sleep(self.rtt_s)
        usage.wait_s += self.rtt_s
        return super().step(session_id, req, user_id=user_id, mode=mode, usage=usage, guard=guard)


def run(n_draft: int, rtt_s: float = 0.0, salt: int = 2, **kw):
    options = LogitsOptions(
        draft_tokens=n_draft, schedule=Schedule.every_step(), max_tokens=60, top_k=5, **kw
    )
    usage = CloudUsage()
    return LogitsLoop(
        TimedToyModel(),
        PrivatePrompt.uncached(PRIVATE),
        PublicPrompt.of_tokens(PUBLIC),
        options,
        cloud=CloudLink(TimedToyCloud(rtt_s, salt=salt), "u1", usage),
    ).run()


@pytest.mark.parametrize("rtt_s", [0.0, 0.01, 0.04])
@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.9, "top_p": 0.95, "seed": 3}])
def test_adaptive_drafts_give_the_step_by_step_answer_at_any_round_trip(rtt_s, sampling):
    base = run(0, lookahead=False, **sampling)
    assert base.generated_tokens > 10
    for adaptive in (True, False):
        got = run(8, rtt_s, adaptive_draft=adaptive, **sampling)
        assert got.tokens == base.tokens, f"adaptive={adaptive}"
        assert got.finish_reason == base.finish_reason


def test_a_longer_round_trip_makes_longer_drafts_when_they_are_kept():
    agreeing = {"salt": 1, "draft_min_prob": 0.0}  # a cloud that keeps every draft
    near = run(8, 0.0, **agreeing)
    far = run(8, 0.05, **agreeing)  # a round trip covers about twelve steps
    assert near.tokens == far.tokens
    assert far.accepted == far.drafted
    # Near: the reply is back before a second token is drafted, so drafts are short.
    assert near.drafted / near.cloud_calls < 2
    assert far.drafted / far.cloud_calls > 5
    assert far.cloud_calls < near.cloud_calls / 3


def test_fixed_drafts_always_draft_their_length_first():
    agreeing = {"salt": 1, "draft_min_prob": 0.0}
    fixed = run(8, 0.0, adaptive_draft=False, **agreeing)
    streaming = run(8, 0.0, **agreeing)
    assert fixed.tokens == streaming.tokens
    assert fixed.drafted / fixed.cloud_calls > 5  # 8 per call, but the last ones
    assert streaming.cloud_calls > 2 * fixed.cloud_calls
