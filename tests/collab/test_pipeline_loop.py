"""Adaptive drafts at network distance, on toy models whose steps and round trips are
timed (virtually): the answer stays the step-by-step one, the draft length follows the
round trip."""

from __future__ import annotations

import pytest

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudUsage
from tests.collab.toys import ToyCloud, ToyModel

PRIVATE = [5, 6, 7, 8, 9, 10, 11]
PUBLIC = [5, 6, 7]
STEP_S = 0.02  # virtual seconds per small-model token


class TimedToyModel(ToyModel):
    """A toy small model whose timer counts STEP_S per evaluated token."""

    def append(self, tokens):
        self.timer.seconds += STEP_S * len(tokens)
        return super().append(tokens)


class TimedToyCloud(ToyCloud):
    """A toy cloud whose every call is charged a virtual round trip as wait time."""

    def __init__(self, rtt_s: float, **kw) -> None:
        super().__init__(**kw)
        self.rtt_s = rtt_s

    def step(self, session_id, req, *, user_id, mode, usage, guard=None):
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


@pytest.mark.parametrize("rtt_s", [0.0, 0.01, 0.05, 0.3])
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
    far = run(8, 0.3, **agreeing)
    fixed = run(8, 0.3, adaptive_draft=False, **agreeing)
    assert near.tokens == far.tokens == fixed.tokens
    assert far.accepted == far.drafted
    assert far.cloud_calls < fixed.cloud_calls < near.cloud_calls
