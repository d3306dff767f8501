"""OpenAI-compatible request and response shapes of the local endpoint.

A request turns itself into a `CompletionJob` (``ChatCompletionRequest.to_job``), with
the server's defaults filled in for every option it leaves out, the way vLLM's
``ChatCompletionRequest.to_sampling_params`` does: one typed place for that.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_agent import limits as edge_limits
from edge_agent.collab.drafter import Drafter
from edge_agent.collab.fusion import FusionRuleName
from edge_agent.collab.gate import Gate
from edge_agent.collab.logits import LogitsOptions
from edge_agent.collab.schedule import Schedule
from edge_agent.conversation import Conversation
from edge_agent.gates import GATE_NAME
from edge_agent.guard.result import Policy
from edge_agent.job import CompletionJob, Mode
from edge_agent.report import CompletionReport
from edge_agent.settings import EdgeSettings
from edge_agent.store.context import UserContext
from shared_protocol import limits


class TextPart(BaseModel):
    """A text part of a message's content (OpenAI's array form of ``content``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str = Field(max_length=edge_limits.MAX_MESSAGE_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "tool" messages answer tool calls, which the edge never makes (see `tools`).
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart] = Field(max_length=edge_limits.MAX_MESSAGE_CHARS)
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


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
    drafter: Drafter | None = Field(
        None,
        description="who drafts a logits round: 'edge' (the small model), 'cloud' (the "
        "cloud proposes draft_tokens tokens of its own) or 'auto' (per round, by measured "
        "speed); the cloud drafts only if it lists the 'propose' capability",
    )
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
            drafter=self.drafter or defaults.drafter,
            top_k=self.top_k or defaults.top_k,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            prefix_redaction=True if self.prefix_redaction is None else self.prefix_redaction,
        )


MAX_STOP_SEQUENCES = 4


def _zero(value: Any) -> bool:
    return value == 0


def _falsy(value: Any) -> bool:
    return not value


def _no_tool(value: Any) -> bool:
    return value == "none"


# OpenAI's fields the edge cannot honour: (is this value neutral?, why it is refused).
REFUSALS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "presence_penalty": (_zero, "the edge cannot apply penalties; only 0 is accepted"),
    "frequency_penalty": (_zero, "the edge cannot apply penalties; only 0 is accepted"),
    "logprobs": (_falsy, "the edge does not return log-probabilities"),
    "top_logprobs": (_falsy, "the edge does not return log-probabilities"),
    "logit_bias": (_falsy, "the edge cannot bias tokens"),
    "response_format": (
        lambda v: v.get("type") == "text",
        "only {'type': 'text'} is supported",
    ),
    "tools": (_falsy, "the edge does not call tools"),
    "tool_choice": (_no_tool, "the edge does not call tools"),
    "functions": (_falsy, "the edge does not call functions"),
    "function_call": (_no_tool, "the edge does not call functions"),
    "store": (_falsy, "the edge keeps no completions for later; only false is accepted"),
    "modalities": (lambda v: v == ["text"], "the edge answers in text only"),
    "audio": (_falsy, "the edge answers in text only"),
    "prediction": (_falsy, "predicted outputs are not supported"),
    "web_search_options": (_falsy, "the edge does not search the web"),
    "reasoning_effort": (_falsy, "the edge's models do not reason in steps"),
    "service_tier": (lambda v: v in ("auto", "default"), "the edge has one service tier"),
}


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request, as far as the edge can honour it.

    Fields of OpenAI's API that the edge cannot honour are refused with a 400 that names
    the field, unless they carry their neutral value (``presence_penalty: 0``, ``store:
    false``, ``response_format: {"type": "text"}``, ...), which changes nothing and is
    accepted. Fields that are not OpenAI's are unknown and refused too: a typo must not
    silently change what is sent.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=edge_limits.MAX_MESSAGES)
    user: str | None = Field(None, max_length=edge_limits.MAX_USER_CHARS)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=edge_limits.MAX_COMPLETION_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=edge_limits.MAX_COMPLETION_TOKENS)
    temperature: float | None = Field(None, ge=0, le=edge_limits.MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # OpenAI's int64 range
    n: int | None = None
    stop: str | list[str] | None = None
    # Accepted when neutral, refused (naming the field) otherwise.
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    cogenesis: CogenesisOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("the edge returns one choice; n must be 1")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return value

    @field_validator(*REFUSALS, mode="after")
    @classmethod
    def _neutral_or_refused(cls, value: Any, info: ValidationInfo) -> Any:
        """A field the edge cannot honour passes only with its neutral value; the error
        names the field (its location), as OpenAI's errors do in ``param``."""
        neutral, why = REFUSALS[info.field_name or ""]
        if value is not None and not neutral(value):
            raise ValueError(why)
        return value

    def conversation(self) -> Conversation | None:
        """The conversation; None when there is no non-blank last user message."""
        return Conversation.of((m.role, m.text) for m in self.messages)

    def task(self) -> str | None:
        """The task: the last user message, stripped; None when it is missing or blank."""
        conversation = self.conversation()
        return conversation.task if conversation else None

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def to_job(
        self,
        ctx: UserContext,
        conversation: Conversation,
        defaults: EdgeSettings,
        mode: Mode | None = None,
        gate: Gate | None = None,
    ) -> CompletionJob:
        """The job to run, every option resolved: the request's, else the server's.

        ``mode`` is the mode ``model`` names (an alias resolved); default: ``model``
        itself, which the job checks against ``edge_agent.job.MODES``. ``gate`` is the
        gate the request's fusion needs, already loaded by name.
        """
        mode = mode or cast(Mode, self.model)
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
            conversation=conversation,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=self.seed,
            stop=self.stop_sequences(),
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
        "usage": usage_of(report),
        "cogenesis": report.model_dump(mode="json"),
    }


def usage_of(report: CompletionReport) -> dict[str, int]:
    """OpenAI's ``usage`` object of one completion."""
    return {
        "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens,
        "total_tokens": report.prompt_tokens + report.completion_tokens,
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
