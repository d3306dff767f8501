"""Logits mode, wired into the gateway: guard the public prompt, fuse, stream the text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent.collab.logits import LogitsOptions, run_logits
from edge_agent.collab.private import PrivatePrompt, TextDecoder
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudUsage, GuardRecord
from edge_agent.prompts import PUBLIC_SYSTEM, task_title
from edge_agent.slm import SmallModel

REPORTED = (
    "generated_tokens",
    "collaborated",
    "drafted",
    "accepted",
    "fusion",
    "schedule",
    "draft_tokens",
    "seed",
    "prefix_redaction",
    "redacted_spans",
    "held_back_steps",
    "prefix_guard_s",
)


def logits_options(job: Any, settings: Any) -> LogitsOptions:
    opts = job.options
    schedule = opts.get("schedule")
    return LogitsOptions(
        fusion=opts.get("fusion") or settings.fusion,
        alpha=opts.get("alpha", settings.fusion_alpha),
        gate_path=opts.get("gate_path") or settings.gate_path,
        schedule=Schedule(P=schedule["p"], K=schedule["k"], T=schedule["t"])
        if schedule
        else Schedule.every_step(),
        draft_tokens=opts.get("draft_tokens", settings.draft_tokens),
        top_k=opts.get("top_k") or settings.top_k,
        max_tokens=job.max_tokens,
        temperature=job.temperature,
        top_p=job.top_p,
        seed=job.seed,
        public_system=PUBLIC_SYSTEM,
        prefix_redaction=opts.get("prefix_redaction", True),
    )


def prefix_matcher(guard: Any, ctx: Any, policy: str) -> Any:
    """The user's profile terms for prefix redaction; none under policy "off".

    Presidio is too slow to run at every generated token (it guards the title); the
    small model's private details come from the profile, whose terms the matcher holds.
    """
    return guard.matcher_for(ctx) if policy in ("redact", "block") else None


def run_logits_mode(
    gateway: Any,
    slm: SmallModel,
    job: Any,
    prompt: PrivatePrompt,
    policy: str,
    usage: CloudUsage,
    on_text: Callable[[str], None],
    report: dict[str, Any],
) -> int:
    inspected = gateway.guard.inspect(task_title(job.task), job.ctx, policy)
    record = inspected.to_record()
    report["guard"] = record
    if inspected.blocked:
        report.update(
            degraded=True,
            degraded_reason="blocked by the privacy guard: the "
            "task title names private details; answered on the device alone",
        )
        return gateway.run_local(slm, job, prompt, on_text)
    decoder = TextDecoder(slm)

    def on_token(token: int) -> None:
        piece = decoder.feed(token)
        if piece:
            on_text(piece)

    result = run_logits(
        slm,
        prompt,
        inspected.text,
        gateway.cloud,
        logits_options(job, gateway.settings),
        job.ctx.user_id,
        usage,
        on_token,
        guard=GuardRecord(policy=policy, findings=record.get("findings")),
        mode="cogenesis-logits",
        matcher=prefix_matcher(gateway.guard, job.ctx, policy),
    )
    tail = decoder.flush()
    if tail:
        on_text(tail)
    report["logits"] = {key: getattr(result, key) for key in REPORTED}
    if result.degraded:
        report.update(degraded=True, degraded_reason=result.degraded_reason)
    return result.generated_tokens
