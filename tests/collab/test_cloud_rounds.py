"""Rounds drafted by the cloud, and the per-round choice of drafter, on toy models: the
answer stays the step-by-step one (greedy and seeded), with and without prefix
redaction; the chooser follows the measured costs."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.collab.drafter import DrafterChoice
from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudUsage, GuardRecord
from tests.collab.test_logits_loop import (
    PRIVATE,
    PUBLIC,
    SCHEDULES,
    WordyToyModel,
    _private_words,
    _words,
)
from tests.collab.test_pipeline_loop import STEP_S, TimedToyCloud, TimedToyModel
from tests.collab.toys import ToyCloud, ToyModel

SAMPLED = {"temperature": 0.9, "top_p": 0.95, "seed": 5}


def _run(
    drafter="edge",
    n=8,
    schedule=None,
    *,
    can_propose=True,
    cloud=None,
    model=None,
    matcher=None,
    public=PUBLIC,
    **kw,
):
    options = LogitsOptions(
        draft_tokens=n,
        schedule=schedule or Schedule.every_step(),
        max_tokens=60,
        top_k=5,
        drafter=drafter,
        **kw,
    )
    cloud = cloud or ToyCloud()
    model = model or ToyModel()
    guard = GuardRecord(policy="redact", findings=[]) if matcher is not None else None
    link = CloudLink(cloud, "u1", CloudUsage(), guard=guard, can_propose=can_propose)
    result = LogitsLoop(
        model,
        PrivatePrompt.uncached(PRIVATE),
        PublicPrompt.of_tokens(public),
        options,
        cloud=link,
        matcher=matcher,
    ).run()
    return result, cloud, model


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
def test_cloud_and_auto_rounds_give_the_step_by_step_answer(schedule, sampling):
    base, _, _ = _run("edge", 0, schedule, lookahead=False, **sampling)
    assert base.generated_tokens > 10
    for drafter in ("cloud", "auto"):
        for n in (1, 4, 8, 16):
            for lookahead in (False, True):
                cloud = ToyCloud(delay_s=0.002 if lookahead else 0.0)
                got, _, _ = _run(drafter, n, schedule, cloud=cloud, lookahead=lookahead, **sampling)
                assert got.tokens == base.tokens, f"{drafter} N={n} lookahead={lookahead}"
                assert got.finish_reason == base.finish_reason
    assert got.drafter == "auto"


def test_cloud_rounds_count_proposals_and_use_fewer_edge_evaluations_per_round():
    got, cloud, model = _run("cloud", 8, lookahead=False)
    assert got.rounds["cloud"] > 0 and got.rounds["edge"] == 0
    assert 0 < got.proposed_accepted <= got.proposed
    assert got.drafted == 0 and got.accepted == 0  # nothing drafted by the edge
    # Every proposal was really proposed: the toy cloud's own greedy continuation.
    steps = [r for r in cloud.requests if getattr(r, "propose", 0)]
    assert steps and all(not r.draft for r in steps)
    # The cloud learned the whole answer.
    assert cloud.committed_answer("s0")[: len(got.tokens) - 8] == got.tokens[: len(got.tokens) - 8]


def test_without_the_capability_the_edge_drafts():
    got, cloud, _ = _run("cloud", 8, can_propose=False)
    base, _, _ = _run("edge", 8)
    assert got.drafter == "edge" and got.rounds["cloud"] == 0 and got.proposed == 0
    assert not any(getattr(r, "propose", 0) for r in cloud.requests)
    assert got.tokens == base.tokens


@pytest.mark.parametrize("schedule", SCHEDULES[:2], ids=str)
def test_cloud_rounds_keep_prefix_redaction(schedule):
    matcher, private = _private_words(schedule)
    base, _, _ = _run("edge", 0, schedule, model=WordyToyModel(), matcher=matcher, lookahead=False)
    assert base.redacted_spans > 0 and base.held_back_steps > 0
    for drafter in ("cloud", "auto"):
        for lookahead in (False, True):
            cloud = ToyCloud(delay_s=0.002 if lookahead else 0.0)
            got, cloud, model = _run(
                drafter,
                8,
                schedule,
                cloud=cloud,
                model=WordyToyModel(),
                matcher=matcher,
                lookahead=lookahead,
            )
            assert got.tokens == base.tokens, drafter
            assert got.held_back_steps == base.held_back_steps
            assert got.rounds["cloud"] > 0
            # The canary: the private word is in the answer, never in what was sent.
            sent = [t for r in cloud.requests for t in (getattr(r, "append", None) or [])]
            sent += [t for r in cloud.requests for t in (getattr(r, "draft", None) or [])]
            assert not set(private) & set(_words(model, sent))
    assert set(private) & set(_words(model, base.tokens))


def test_a_cloud_dying_mid_cloud_round_degrades_but_completes():
    base, _, _ = _run("edge", 0, lookahead=False)
    got, _, _ = _run("cloud", 8, cloud=ToyCloud(fail_after_steps=2))
    assert got.degraded and got.generated_tokens > 0
    healthy, _, _ = _run("cloud", 8)
    assert healthy.tokens == base.tokens


# --- the chooser ------------------------------------------------------------------------


def test_auto_follows_measured_costs_on_timed_toys():
    """A slow cloud round (a CPU cloud decoding 8 tokens) loses to edge drafts; a fast
    one (a GPU) wins. The tokens are the same either way."""
    # The toy cloud sees what the edge sees: its proposals are the fused choices.
    agreeing = {"draft_min_prob": 0.0, "lookahead": False, "public": PRIVATE}
    slow, _, _ = _run("auto", 8, cloud=_ProposeTimed(0.01, 0.05), model=_Batching(), **agreeing)
    fast, _, _ = _run("auto", 8, cloud=_ProposeTimed(0.01, 0.0), model=_Batching(), **agreeing)
    assert slow.tokens == fast.tokens
    assert slow.rounds["edge"] > slow.rounds["cloud"]
    assert fast.rounds["cloud"] > fast.rounds["edge"]


class _Batching(TimedToyModel):
    """A timed toy whose batched pass costs 1.35 steps, whatever its length."""

    def append_exact(self, tokens):
        self.timer.seconds += STEP_S * (1.35 if len(tokens) > 1 else 1.0)
        return np.stack([ToyModel.append(self, [t]) for t in tokens])  # untimed rows


class _ProposeTimed(TimedToyCloud):
    """A timed toy cloud that also charges `per_token_s` for each token it proposes."""

    def __init__(self, rtt_s: float, per_token_s: float) -> None:
        super().__init__(rtt_s, salt=1)  # the same toy as the edge: proposals are kept
        self.per_token_s = per_token_s

    def step(self, session_id, req, *, user_id, mode, usage, guard=None):
        usage.wait_s += self.per_token_s * req.propose
        return super().step(session_id, req, user_id=user_id, mode=mode, usage=usage, guard=guard)


def test_the_chooser_arithmetic():
    choice = DrafterChoice(cloud_tokens=8, explore_every=100)
    assert choice.next_round(8) == "cloud"  # untimed: try the cloud first
    choice.observe_cloud_round(0.5)
    assert choice.next_round(8) == "edge"  # then the edge
    choice.observe_step(0.02)
    choice.observe_edge_wait(0.01)
    # Edge: a = 0.85, N = 8: (1 - 0.85^9) / 0.15 = 5.14 tokens in 9 * 0.02 + 0.01 s.
    assert choice.rate("edge", 8) == pytest.approx((1 - 0.85**9) / 0.15 / 0.19)
    # None: one token in 0.03 s; cloud: a = 0.6: (1 - 0.6^9) / 0.4 = 2.47 tokens in 0.5 s.
    assert choice.rate("none", 8) == pytest.approx(1 / 0.03)
    assert choice.rate("cloud", 8) == pytest.approx((1 - 0.6**9) / 0.4 / 0.5)
    assert choice.next_round(8) == "none"  # 33 tokens/s beats 27 and 4.9
    choice.cloud.observe(80, 80)  # the cloud's tokens are always kept ...
    for _ in range(10):
        choice.observe_cloud_round(0.05)  # ... and its rounds became fast
    assert choice.cloud.value == pytest.approx((0.6 * 8 + 80) / 88)
    assert choice.next_round(8) == "cloud"
    explorer = DrafterChoice(explore_every=3, cloud_round_s=0.01, step_s=1.0, edge_wait_s=1.0)
    kinds = [explorer.next_round(8) for _ in range(6)]
    assert kinds == ["cloud", "cloud", "edge", "cloud", "cloud", "edge"]
