"""The adaptive draft length: longer drafts when a round trip costs more, shorter ones
when fewer drafted tokens are kept."""

from __future__ import annotations

import pytest

from edge_agent.collab.draft_length import DraftLength, best_length, expected_tokens


def test_expected_tokens_is_the_kept_run_plus_one() -> None:
    assert expected_tokens(1.0, 8) == 9
    assert expected_tokens(0.0, 8) == 1
    assert expected_tokens(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)


@pytest.mark.parametrize("acceptance", [0.7, 0.85, 0.95])
def test_a_costlier_round_trip_never_shortens_the_draft(acceptance: float) -> None:
    lengths = [best_length(acceptance, 0.02, wait, 1, 16) for wait in (0, 0.01, 0.05, 0.1, 0.3)]
    assert lengths == sorted(lengths)
    assert lengths[-1] > lengths[0]


def test_lower_acceptance_never_lengthens_the_draft() -> None:
    lengths = [best_length(a, 0.02, 0.05, 1, 16) for a in (0.95, 0.9, 0.8, 0.6, 0.3)]
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[0] > lengths[-1]


def test_the_length_stays_in_bounds() -> None:
    assert best_length(0.99, 0.001, 10.0, 2, 6) == 6
    assert best_length(0.01, 1.0, 0.0, 2, 6) == 2
    with pytest.raises(ValueError):
        best_length(0.9, 0.01, 0.01, 0, 4)


def test_policy_starts_from_its_default_and_adapts_to_what_it_observes() -> None:
    policy = DraftLength(start=8, lo=1, hi=16)
    assert policy.next_length() == 8  # nothing timed yet
    policy.observe_step(0.02)
    policy.observe_wait(0.002)
    policy.observe_round(drafted=8, accepted=2)
    short = policy.next_length()
    far = DraftLength(start=8, lo=1, hi=16)
    far.observe_step(0.02)
    far.observe_wait(0.2)
    far.observe_round(drafted=8, accepted=8)
    assert far.next_length() > short
    assert far.lookahead() == 10  # 0.2 s of waiting covers ten 0.02 s steps


def test_acceptance_moves_from_the_prior_towards_the_observed_rate() -> None:
    policy = DraftLength(prior_acceptance=0.8, prior_weight=10)
    assert policy.acceptance == pytest.approx(0.8)
    policy.observe_round(drafted=90, accepted=45)
    assert policy.acceptance == pytest.approx((8 + 45) / 100)
    with pytest.raises(ValueError):
        policy.observe_round(drafted=2, accepted=3)
    with pytest.raises(ValueError):
        DraftLength(start=20, hi=16)
