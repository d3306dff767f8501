"""OpenAI-compatible request and response shapes of the local endpoint.

A request turns itself into a `CompletionJob` (``ChatCompletionRequest.to_job``), with
the server's defaults filled in for every option it leaves out, the way vLLM's
``ChatCompletionRequest.to_sampling_params`` does: one typed place for that.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent import limits as edge_limits
from edge_agent.collab.fusion import FusionRuleName
from edge_agent.collab.gate import Gate
from edge_agent.collab.logits import LogitsOptions
from edge_agent.collab.schedule import Schedule
from edge_agent.gates import GATE_NAME
from edge_agent.guard.result import Policy
from edge_agent.job import CompletionJob, Mode
from edge_agent.report import CompletionReport
from edge_agent.settings import EdgeSettings
from edge_agent.store.context import UserContext
from shared_protocol import limits


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str = Field(max_length=edge_limits.MAX_MESSAGE_CHARS)
    name: str | None = None


class ScheduleOptions(BaseModel):
    """The paper's P/K/T schedule (see edge_agent/collab/schedule.py)."""

    model_config = ConfigDict(extra="forbid")

    p: int = Field(
        0, ge=0, le=edge_limits.MAX_SCHEDULE_STEPS, description="fuse the first P tokens (warm-up)"
    )
    k: int = Field(
        0,
        ge=0,
        le=edge_limits.MAX_SCHEDULE_STEPS,
        description="then K tokens by the small model alone",
    )
    t: int = Field(
        1, ge=0, le=edge_limits.MAX_SCHEDULE_STEPS, description="alternating with T fused tokens"
    )

    @model_validator(mode="after")
    def _cycle_has_steps(self) -> ScheduleOptions:
        if self.k + self.t == 0:
            raise ValueError("k + t must be positive")
        return self

    def to_schedule(self) -> Schedule:
        return Schedule(P=self.p, K=self.k, T=self.t)


class CogenesisOptions(BaseModel):
    """Mode options in the request's optional `cogenesis` object."""

    model_config = ConfigDict(extra="forbid")

    guard_policy: Policy | None = None
    sketch_points: int | None = Field(None, ge=1, le=limits.MAX_SKETCH_POINTS)
    fusion: FusionRuleName | None = None
    alpha: float | None = Field(None, ge=0, le=1)
    gate: str | None = Field(
        None,
        pattern=GATE_NAME.pattern,
        description="for fusion 'gate': the name of a trained gate in the edge's gates "
        "folder (never a path)",
    )
    draft_tokens: int | None = Field(None, ge=0, le=limits.MAX_DRAFT_TOKENS)
    top_k: int | None = Field(None, ge=1, le=limits.MAX_TOP_K)
    schedule: ScheduleOptions | None = None
    prefix_redaction: bool | None = None

    def to_logits_options(
        self,
        defaults: EdgeSettings,
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        gate: Gate | None = None,
    ) -> LogitsOptions:
        """The logits loop's options: these, or the server's defaults where unset."""
        return LogitsOptions(
            fusion=self.fusion or defaults.fusion,
            alpha=defaults.fusion_alpha if self.alpha is None else self.alpha,
            gate=gate,
            schedule=self.schedule.to_schedule() if self.schedule else Schedule.every_step(),
            draft_tokens=defaults.draft_tokens if self.draft_tokens is None else self.draft_tokens,
            top_k=self.top_k or defaults.top_k,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            prefix_redaction=True if self.prefix_redaction is None else self.prefix_redaction,
        )


class ChatCompletionRequest(BaseModel):
    # Unknown fields are rejected: a typo must not silently change what is sent.
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=edge_limits.MAX_MESSAGES)
    user: str | None = Field(None, max_length=edge_limits.MAX_USER_CHARS)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1, le=edge_limits.MAX_COMPLETION_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=edge_limits.MAX_COMPLETION_TOKENS)
    temperature: float | None = Field(None, ge=0, le=edge_limits.MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # OpenAI's int64 range
    n: int | None = Field(None, ge=1, le=1)
    stop: str | list[str] | None = None
    cogenesis: CogenesisOptions | None = None

    def task(self) -> str | None:
        """The task: the last user message, stripped; None when it is missing or blank."""
        user_turns = [m.content for m in self.messages if m.role == "user"]
        if not user_turns or not user_turns[-1].strip():
            return None
        return user_turns[-1].strip()

    def to_job(
        self, ctx: UserContext, task: str, defaults: EdgeSettings, gate: Gate | None = None
    ) -> CompletionJob:
        """The job to run, every option resolved: the request's, else the server's.

        `model` must name a mode (`edge_agent.job.MODES`); the job checks it again.
        `gate` is the gate the request's fusion needs, already loaded by name.
        """
        mode = cast(Mode, self.model)
        options = self.cogenesis or CogenesisOptions()
        max_tokens = self.max_completion_tokens or self.max_tokens or defaults.max_tokens
        temperature = 0.0 if self.temperature is None else self.temperature
        top_p = 1.0 if self.top_p is None else self.top_p
        logits = None
        if mode == "cogenesis-logits":
            logits = options.to_logits_options(
                defaults,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=self.seed,
                gate=gate,
            )
        return CompletionJob(
            mode=mode,
            ctx=ctx,
            task=task,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=self.seed,
            guard_policy=options.guard_policy or defaults.guard_policy,
            sketch_points=options.sketch_points or defaults.sketch_points,
            logits=logits,
        )


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion(cid: str, model: str, text: str, report: CompletionReport) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": report.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": report.prompt_tokens,
            "completion_tokens": report.completion_tokens,
            "total_tokens": report.prompt_tokens + report.completion_tokens,
        },
        "cogenesis": report.model_dump(mode="json"),
    }


def chat_chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    report: CompletionReport | None = None,
) -> dict[str, Any]:
    """One streamed chunk; the last one (with the report) carries the finish reason."""
    finish = report.finish_reason if report is not None else None
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if report is not None:
        chunk["cogenesis"] = report.model_dump(mode="json")
    return chunk
