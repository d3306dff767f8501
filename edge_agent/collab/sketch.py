"""Sketch mode, cloud half: get an outline for the task without sending any context.

Only the task's short title leaves, after the guard has inspected it. Its redactions are
numbered placeholders (``<PERSON_1>``); the outline the cloud returns may use them, and
``OutlineResult.private_points`` puts the true values back, on the device, for the small
model, which then writes the answer from the private prompt plus this outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.guard.request import RequestGuard
from edge_agent.outbound import CloudClient, CloudError, CloudUsage, GuardRecord
from edge_agent.prompts import task_title
from shared_protocol import SketchRequest
from shared_protocol.limits import MAX_INSTRUCTION_CHARS


@dataclass
class OutlineResult:
    points: list[str] = field(default_factory=list)  # as the cloud wrote them
    private_points: list[str] = field(default_factory=list)  # placeholders mapped back
    degraded: bool = False
    reason: str | None = None
    guard: dict[str, Any] | None = None


def fetch_outline(
    cloud: CloudClient,
    guard: RequestGuard,
    task: str,
    *,
    usage: CloudUsage,
    max_points: int,
    max_tokens: int = 160,
) -> OutlineResult:
    """Ask the cloud for an outline; never raises for cloud trouble, degrades instead."""
    ctx, policy = guard.ctx, guard.policy
    instruction = task_title(task)[:MAX_INSTRUCTION_CHARS]
    inspected = guard.inspect(instruction)
    record = inspected.to_record()
    if inspected.blocked:
        return OutlineResult(
            degraded=True,
            reason="blocked by the privacy guard: the instruction names private details",
            guard=record,
        )
    request = SketchRequest(
        instruction=inspected.text, max_points=max_points, max_tokens=max_tokens
    )
    try:
        reply = cloud.sketch(
            request,
            user_id=ctx.user_id,
            usage=usage,
            guard=GuardRecord(policy=policy, findings=record.get("findings")),
        )
    except CloudError as exc:
        # str(exc) starts with the kind: cloud busy, unreachable or timed out.
        reason = f"{exc}; answered on the device without an outline"
        return OutlineResult(degraded=True, reason=reason, guard=record)
    points = list(reply.points)
    restored = [guard.placeholders.restore(point) for point in points]
    return OutlineResult(points=points, private_points=restored, guard=record)
