"""Request options become one resolved job; the report serializes as the `cogenesis` object.

No model or server needed: these are the typed seams between the HTTP layer and the
gateway (openai_types.py, job.py, report.py).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.conversation import Conversation
from edge_agent.job import CompletionJob
from edge_agent.openai_types import ChatCompletionRequest, chat_chunk, chat_completion
from edge_agent.outbound import CloudUsage
from edge_agent.report import CompletionReport, LogitsReport
from edge_agent.settings import EdgeSettings
from edge_agent.store.context import UserContext
from tests.collab.toys import ToyCloud, ToyModel

CTX = UserContext(user_id="u1", name="Ana", fields={"Name": "Ana"})
TASK = "Write a note: about the weekend"


def request(model: str = "cogenesis-logits", **body) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=model, messages=[{"role": "user", "content": f"  {TASK}  "}], **body
    )


def server(**overrides) -> EdgeSettings:
    values = {
        "fusion": "max",
        "fusion_alpha": 0.3,
        "draft_tokens": 4,
        "top_k": 7,
        "sketch_points": 3,
        "guard_policy": "block",
        "max_tokens": 33,
        "gate": None,
    }
    return EdgeSettings(**{**values, **overrides})


def test_options_a_request_leaves_out_come_from_the_server():
    settings = server()
    job = request().to_job(CTX, request().conversation(), settings)
    assert (job.mode, job.task, job.max_tokens) == ("cogenesis-logits", TASK, 33)
    assert (job.temperature, job.top_p, job.seed) == (0.0, 1.0, None)
    assert (job.guard_policy, job.sketch_points) == ("block", 3)
    assert job.logits == LogitsOptions(
        fusion="max",
        alpha=0.3,
        draft_tokens=4,
        top_k=7,
        max_tokens=33,
        schedule=Schedule.every_step(),
        prefix_redaction=True,
    )


def test_options_a_request_gives_override_the_server_even_when_falsy():
    body = request(
        max_completion_tokens=12,
        max_tokens=40,
        temperature=0.7,
        top_p=0.9,
        seed=5,
        cogenesis={
            "guard_policy": "off",
            "sketch_points": 2,
            "fusion": "weighted",
            "alpha": 0.0,
            "gate": "letters",
            "draft_tokens": 0,
            "top_k": 2,
            "schedule": {"p": 5, "k": 10, "t": 3},
            "prefix_redaction": False,
        },
    )
    job = body.to_job(CTX, body.conversation(), server())
    assert (job.max_tokens, job.temperature, job.top_p, job.seed) == (12, 0.7, 0.9, 5)
    assert (job.guard_policy, job.sketch_points) == ("off", 2)
    assert job.logits == LogitsOptions(
        fusion="weighted",
        alpha=0.0,
        draft_tokens=0,
        top_k=2,
        schedule=Schedule(5, 10, 3),
        max_tokens=12,
        temperature=0.7,
        top_p=0.9,
        seed=5,
        prefix_redaction=False,
    )


def test_the_drafter_comes_from_the_request_or_the_server_and_is_checked():
    assert request().to_job(CTX, request().conversation(), server()).logits.drafter == "edge"
    auto = server(drafter="auto")
    assert request().to_job(CTX, request().conversation(), auto).logits.drafter == "auto"
    body = request(cogenesis={"drafter": "cloud"})
    assert body.to_job(CTX, body.conversation(), auto).logits.drafter == "cloud"
    with pytest.raises(ValidationError, match="drafter"):
        request(cogenesis={"drafter": "gpu"})
    with pytest.raises(ValidationError, match="drafter"):
        server(drafter="gpu")


def test_only_a_logits_job_carries_loop_options():
    for mode in ("local", "cogenesis-sketch"):
        body = request(mode)
        assert body.to_job(CTX, body.conversation(), server()).logits is None
    with pytest.raises(ValueError, match="loop options"):
        CompletionJob(
            mode="cogenesis-logits", ctx=CTX, conversation=Conversation(TASK), max_tokens=8
        )
    with pytest.raises(ValueError, match="unknown mode"):
        CompletionJob(mode="gpt-5", ctx=CTX, conversation=Conversation(TASK), max_tokens=8)  # type: ignore[arg-type]


def test_the_task_is_the_last_user_message_and_blank_is_none():
    body = ChatCompletionRequest(
        model="local",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": " second "},
        ],
    )
    assert body.task() == "second"
    blank = ChatCompletionRequest(model="local", messages=[{"role": "user", "content": "  "}])
    assert blank.task() is None
    system_only = ChatCompletionRequest(
        model="local", messages=[{"role": "system", "content": "x"}]
    )
    assert system_only.task() is None


def test_a_schedule_without_steps_is_rejected_by_the_request_model():
    with pytest.raises(ValidationError, match="k \\+ t must be positive"):
        request(cogenesis={"schedule": {"p": 0, "k": 0, "t": 0}})
    request(cogenesis={"schedule": {"p": 3, "k": 2, "t": 0}})  # warm-up only: allowed


def test_the_report_leaves_out_what_does_not_apply_and_never_the_finish_reason():
    report = CompletionReport(mode="local", guard_policy="redact", completion_tokens=4)
    report.finish_reason = "length"
    data = report.model_dump(mode="json")
    assert "finish_reason" not in data
    assert not {"degraded_reason", "sketch_points", "guard", "logits"} & set(data)
    assert data["degraded"] is False and data["completion_tokens"] == 4
    # Nulls inside a section (a finding with nothing replaced) are kept as they are.
    finding = {"entity_type": "PERSON", "replaced_with": None}
    report.guard = {"policy": "block", "blocked": True, "findings": [finding]}
    report.degrade("blocked")
    data = report.model_dump(mode="json")
    assert data["degraded"] is True and data["degraded_reason"] == "blocked"
    assert data["guard"]["findings"] == [finding]


def test_the_response_takes_finish_reason_and_usage_from_the_report():
    report = CompletionReport(
        mode="local", guard_policy="redact", prompt_tokens=10, completion_tokens=3
    )
    report.finish_reason = "length"
    body = chat_completion("chatcmpl-1", "local", "hi", report)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert body["cogenesis"] == report.model_dump(mode="json")
    last = chat_chunk("chatcmpl-1", "local", {}, report)
    assert last["choices"][0]["finish_reason"] == "length" and "cogenesis" in last
    piece = chat_chunk("chatcmpl-1", "local", {"content": "h"})
    assert piece["choices"][0]["finish_reason"] is None and "cogenesis" not in piece


def test_the_logits_report_is_read_from_the_loop_result():
    options = LogitsOptions(draft_tokens=4, top_k=5, max_tokens=20)
    result = LogitsLoop(
        ToyModel(),
        PrivatePrompt.uncached([5, 6, 7, 8]),
        PublicPrompt.of_tokens([5, 6]),
        options,
        cloud=CloudLink(ToyCloud(), "u1", CloudUsage()),
    ).run()
    report = LogitsReport.of(result)
    for name in LogitsReport.model_fields:
        assert getattr(report, name) == getattr(result, name), name
    assert report.collaborated > 0 and report.drafted > 0
