"""Rounds drafted by the cloud (``propose``): the proposal's rows are exactly the rows of
scoring the same tokens as a draft; rejected steps change nothing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_service.testing import RunningCloud as Cloud
from shared_protocol import PROPOSE_CAPABILITY, SessionStepRequest, SessionStepResponse, limits

pytestmark = pytest.mark.slow  # the real model behind a real server


def test_the_protocol_bounds_propose_and_excludes_a_draft_with_it() -> None:
    assert SessionStepRequest(propose=limits.MAX_DRAFT_TOKENS).propose == limits.MAX_DRAFT_TOKENS
    for bad in ({"propose": -1}, {"propose": limits.MAX_DRAFT_TOKENS + 1}):
        with pytest.raises(ValidationError, match="propose"):
            SessionStepRequest.model_validate(bad)
    with pytest.raises(ValidationError, match="not both"):
        SessionStepRequest(propose=4, draft=[5])
    with pytest.raises(ValidationError, match="extra"):
        SessionStepRequest.model_validate({"propose": 2, "proposal": [1]})
    with pytest.raises(ValidationError, match="extra"):
        SessionStepResponse.model_validate(
            {"positions": [], "session_tokens": 1, "proposed": [], "why": "x"}
        )


def test_the_cloud_lists_the_capability(cloud: Cloud) -> None:
    assert PROPOSE_CAPABILITY in cloud.client.get("/v1/info").json()["capabilities"]


def test_proposal_rows_equal_the_rows_of_scoring_it_as_a_draft(
    cloud: Cloud, prompt_tokens: list[int]
) -> None:
    sid = cloud.open(prompt_token_ids=prompt_tokens, top_k=8)["session_id"]
    first = cloud.step(sid, append=[504], propose=8)
    proposed = first["proposed"]
    assert len(proposed) == 8 and len(first["positions"]) == 9
    # Greedy: each proposed token is the top-1 of the row before it.
    assert [p["token_ids"][0] for p in first["positions"][:-1]] == proposed
    # Keep 3 of them, then propose again after a token of the edge's own.
    second = cloud.step(sid, accept=3, append=[28], propose=5)
    assert second["session_tokens"] == len(prompt_tokens) + 1 + 3 + 1
    cloud.close(sid)

    # The same tokens scored as drafts, in a fresh session of its own.
    ref = cloud.open(prompt_token_ids=prompt_tokens, top_k=8)["session_id"]
    as_draft = cloud.step(ref, append=[504], draft=proposed)
    assert as_draft["positions"] == first["positions"]  # bit for bit
    again = cloud.step(ref, accept=3, append=[28], draft=second["proposed"])
    assert again["positions"] == second["positions"]
    cloud.close(ref)


def test_a_proposal_ends_at_the_clouds_end_of_turn(cloud: Cloud) -> None:
    prompt = cloud.engine.chat_prompt_tokens(None, "What is 2+2? Answer with a number only.")
    sid = cloud.open(prompt_token_ids=prompt, top_k=5)["session_id"]
    out = cloud.step(sid, propose=16)
    im_end = prompt[-6]  # it closes the user turn: "<|im_end|>\n<|im_start|>assistant\n"
    assert 0 < len(out["proposed"]) < 16 and im_end not in out["proposed"]
    assert len(out["positions"]) == len(out["proposed"]) + 1
    assert out["positions"][-1]["token_ids"][0] == im_end
    cloud.close(sid)


def test_rejected_proposal_steps_leave_the_session_as_it_was(
    tight_cloud: Cloud, prompt_tokens: list[int]
) -> None:
    opened = tight_cloud.open(prompt_token_ids=prompt_tokens[-20:], top_k=3)
    sid = opened["session_id"]
    before = tight_cloud.step(sid, append=[504], propose=4)
    url = f"/v1/sessions/{sid}/step"
    cases = [
        ({"accept": 1, "draft": [28], "propose": 2}, 422),  # both
        ({"accept": 1, "propose": 17}, 422),  # past the protocol limit
        ({"accept": 1, "append": [10**7], "propose": 2}, 422),  # out of the vocabulary
        ({"accept": 5, "propose": 2}, 422),  # more than was proposed
        ({"accept": 1, "append": [28] * 40, "propose": 16}, 409),  # past the token cap
    ]
    for body, status in cases:
        response = tight_cloud.client.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    # The session still holds the first proposal: accepting all of it works.
    after = tight_cloud.step(sid, accept=len(before["proposed"]))
    assert after["positions"][0] == before["positions"][-1]
    tight_cloud.close(sid)
