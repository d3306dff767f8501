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
from edge_agent.guard.request import RequestGuard
from edge_agent.job import CompletionJob
from edge_agent.outbound import CloudUsage, GuardRecord
from edge_agent.prompts import PUBLIC_SYSTEM, task_title
from edge_agent.slm import SmallModel

MODE = "cogenesis-logits"
BLOCKED_TITLE = (
    "blocked by the privacy guard: the task title names private details; "
    "answered on the device alone"
)


@dataclass(frozen=True)
class LogitsOutcome:
    guard: dict[str, Any]  # the guard's ledger record of the task title
    result: LogitsResult | None  # None: the guard blocked the title, nothing was sent


def run_logits_mode(
    slm: SmallModel,
    job: CompletionJob,
    prompt: PrivatePrompt,
    *,
    guard: RequestGuard,
    cloud: SessionClient,
    usage: CloudUsage,
    on_text: Callable[[str], bool],
    can_propose: bool = False,
) -> LogitsOutcome:
    """``on_text`` gets the answer's text; when it returns True the answer ends there
    (a stop sequence, or the client went away) and the cloud session is closed."""
    if job.logits is None:
        raise ValueError("a logits-mode job needs its loop options")
    ctx, policy = job.ctx, job.guard_policy
    inspected = guard.inspect(task_title(job.task))
    record = inspected.to_record()
    if inspected.blocked:
        return LogitsOutcome(record, None)
    decoder = TextDecoder(slm)

    def on_token(token: int) -> bool:
        return on_text(decoder.feed(token))

    link = CloudLink(
        cloud,
        ctx.user_id,
        usage,
        mode=MODE,
        guard=GuardRecord(policy=policy, findings=record.get("findings")),
        can_propose=can_propose,
    )
    result = LogitsLoop(
        slm,
        prompt,
        PublicPrompt(text=inspected.text, system=PUBLIC_SYSTEM),
        job.logits,
        cloud=link,
        matcher=guard.prefix_matcher(),
        placeholders=guard.placeholders,
        on_token=on_token,
    ).run()
    tail = decoder.flush()
    if tail:
        on_text(tail)
    return LogitsOutcome(record, result)
