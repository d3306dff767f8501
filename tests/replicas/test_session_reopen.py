"""Reopening a session (its replica was lost): one call that rebuilds it from the public
prompt and the tokens it had, and answers the step that failed as the lost one would."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_service.testing import RunningCloud

pytestmark = pytest.mark.slow  # the real model behind a real server


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert [p["token_ids"] for p in got] == [p["token_ids"] for p in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g["logprobs"], w["logprobs"], atol=1e-5)


def test_a_reopened_session_answers_the_failed_step_as_the_lost_one(cloud: RunningCloud) -> None:
    prompt = {"prompt": "Name three seas.", "system": "Be brief.", "top_k": 5}
    lost = cloud.open(**prompt)
    first = lost["next"]["token_ids"][0]
    step = cloud.step(lost["session_id"], append=[first, 28], draft=[504, 9])
    reopened = cloud.open(**prompt, append=[first, 28], draft=[504, 9], replaces=lost["session_id"])
    assert reopened["prompt_tokens"] == lost["prompt_tokens"]
    assert_same([reopened["next"], *reopened["draft_positions"]], step["positions"])
    # The replica held the lost session: the reopen closed it.
    gone = cloud.client.post(f"/v1/sessions/{lost['session_id']}/step", json={})
    assert gone.status_code == 404
    # It goes on like the lost one would have: keep the draft, append, score.
    on = cloud.step(reopened["session_id"], accept=2, append=[11], draft=[12])
    again = cloud.open(**prompt, append=[first, 28, 504, 9, 11], draft=[12])
    assert_same(on["positions"], [again["next"], *again["draft_positions"]])
    assert on["session_tokens"] == lost["prompt_tokens"] + 5
    cloud.close(reopened["session_id"])
    cloud.close(again["session_id"])


def test_an_ordinary_open_sends_and_gets_no_reopen_fields(cloud: RunningCloud) -> None:
    opened = cloud.open(prompt="Name a sea.", top_k=3)
    assert "draft_positions" not in opened
    cloud.close(opened["session_id"])


def test_replacing_an_unknown_session_is_harmless(cloud: RunningCloud) -> None:
    plain = cloud.open(prompt="Name a sea.", top_k=3)
    opened = cloud.open(prompt="Name a sea.", top_k=3, replaces="no-such-session", append=[28])
    assert opened["prompt_tokens"] == plain["prompt_tokens"]  # the append is not prompt
    assert "draft_positions" not in opened  # no draft, nothing to score after it
    step = cloud.step(plain["session_id"], append=[28])
    assert_same([opened["next"]], step["positions"])
    cloud.close(opened["session_id"])
    cloud.close(plain["session_id"])
