"""Logits mode in a completion: guard the task title, run the loop, stream its text.

The gateway hands in what this needs (the guard, the session client, the usage meter);
when the guard blocks the title nothing is sent and the gateway answers on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.collab.logits import (
    CloudLink,
    LogitsLoop,
    LogitsResult,
    PublicPrompt,
    SessionClient,
)
from edge_agent.collab.private import PrivatePrompt, TextDecoder
from edge_agent.guard.matcher import TermMatcher
from edge_agent.guard.protocol import Guard
from edge_agent.job import CompletionJob
from edge_agent.outbound import CloudUsage, GuardRecord
from edge_agent.prompts import PUBLIC_SYSTEM, task_title
from edge_agent.slm import SmallModel
from edge_agent.store.context import UserContext

MODE = "cogenesis-logits"
BLOCKED_TITLE = (
    "blocked by the privacy guard: the task title names private details; "
    "answered on the device alone"
)


@dataclass(frozen=True)
class LogitsOutcome:
    guard: dict[str, Any]  # the guard's ledger record of the task title
    result: LogitsResult | None  # None: the guard blocked the title, nothing was sent


def prefix_matcher(guard: Guard, ctx: UserContext, policy: str) -> TermMatcher | None:
    """The user's profile terms for prefix redaction; none under policy "off".

    Presidio is too slow to run at every generated token (it guards the title); the
    small model's private details come from the profile, whose terms the matcher holds.
    """
    return guard.matcher_for(ctx) if policy in ("redact", "block") else None


def run_logits_mode(
    slm: SmallModel,
    job: CompletionJob,
    prompt: PrivatePrompt,
    *,
    guard: Guard,
    cloud: SessionClient,
    usage: CloudUsage,
    on_text: Callable[[str], None],
) -> LogitsOutcome:
    if job.logits is None:
        raise ValueError("a logits-mode job needs its loop options")
    ctx, policy = job.ctx, job.guard_policy
    inspected = guard.inspect(task_title(job.task), ctx, policy)
    record = inspected.to_record()
    if inspected.blocked:
        return LogitsOutcome(record, None)
    decoder = TextDecoder(slm)

    def on_token(token: int) -> None:
        piece = decoder.feed(token)
        if piece:
            on_text(piece)

    link = CloudLink(
        cloud,
        ctx.user_id,
        usage,
        mode=MODE,
        guard=GuardRecord(policy=policy, findings=record.get("findings")),
    )
    result = LogitsLoop(
        slm,
        prompt,
        PublicPrompt(text=inspected.text, system=PUBLIC_SYSTEM),
        job.logits,
        cloud=link,
        matcher=prefix_matcher(guard, ctx, policy),
        on_token=on_token,
    ).run()
    tail = decoder.flush()
    if tail:
        on_text(tail)
    return LogitsOutcome(record, result)
