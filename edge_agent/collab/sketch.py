"""Sketch mode, cloud half: get an outline for the task without sending any context.

Only the task's short title leaves, after the guard has inspected it. Its redactions are
numbered placeholders (``<PERSON_1>``); the outline the cloud returns may use them, and
``OutlineResult.private_points`` puts the true values back, on the device, for the small
model, which then writes the answer from the private prompt plus this outline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.guard.request import RequestGuard
from edge_agent.outbound import CloudClient, CloudError, CloudRejected, CloudUsage, GuardRecord
from edge_agent.prompts import task_title
from shared_protocol import SketchPointEvent, SketchRequest
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
    asked = _ask(guard, task, max_points, max_tokens)
    if isinstance(asked, OutlineResult):
        return asked
    request, record = asked
    try:
        reply = cloud.sketch(
            request, user_id=guard.ctx.user_id, usage=usage, guard=_guard_record(guard, record)
        )
    except CloudError as exc:
        return _failed(exc, record)
    return _restored(guard, list(reply.points), record)


def stream_outline(
    cloud: CloudClient,
    guard: RequestGuard,
    task: str,
    *,
    usage: CloudUsage,
    max_points: int,
    max_tokens: int = 160,
    on_point: Callable[[str], None],
    stop: threading.Event,
) -> OutlineResult:
    """``fetch_outline`` through the streamed route: ``on_point`` gets each point, its
    placeholders restored, as it arrives. ``stop`` set ends the stream at the next
    event (the connection closes; the cloud stops); the result is then degraded."""
    asked = _ask(guard, task, max_points, max_tokens)
    if isinstance(asked, OutlineResult):
        return asked
    request, record = asked
    points: list[str] = []
    events = cloud.sketch_stream(
        request, user_id=guard.ctx.user_id, usage=usage, guard=_guard_record(guard, record)
    )
    try:
        for event in events:
            if stop.is_set():
                return OutlineResult(degraded=True, reason=STOPPED, guard=record)
            if isinstance(event, SketchPointEvent):
                points.append(event.point)
                on_point(guard.placeholders.restore(event.point))
            elif event.points != len(points):
                raise CloudRejected(f"the outline ended after {len(points)} of {event.points}")
    except CloudError as exc:
        return _failed(exc, record)
    finally:
        events.close()
    return _restored(guard, points, record)


STOPPED = "the outline was not waited for"


def _ask(
    guard: RequestGuard, task: str, max_points: int, max_tokens: int
) -> tuple[SketchRequest, dict[str, Any]] | OutlineResult:
    """The request for the guarded title, or the degraded result when it is blocked."""
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
    return request, record


def _guard_record(guard: RequestGuard, record: dict[str, Any]) -> GuardRecord:
    return GuardRecord(policy=guard.policy, findings=record.get("findings"))


def _failed(exc: CloudError, record: dict[str, Any]) -> OutlineResult:
    # str(exc) starts with the kind: cloud busy, unreachable or timed out.
    reason = f"{exc}; answered on the device without an outline"
    return OutlineResult(degraded=True, reason=reason, guard=record)


def _restored(guard: RequestGuard, points: list[str], record: dict[str, Any]) -> OutlineResult:
    restored = [guard.placeholders.restore(point) for point in points]
    return OutlineResult(points=points, private_points=restored, guard=record)
