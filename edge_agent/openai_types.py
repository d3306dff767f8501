"""OpenAI-compatible request and response shapes of the local endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.collab.fusion import FusionRuleName
from edge_agent.settings import GuardPolicy


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str = Field(max_length=20_000)
    name: str | None = None


class ScheduleOptions(BaseModel):
    """The paper's P/K/T schedule (see edge_agent/collab/schedule.py)."""

    model_config = ConfigDict(extra="forbid")

    p: int = Field(0, ge=0, le=4096, description="fuse the first P tokens (warm-up)")
    k: int = Field(0, ge=0, le=4096, description="then K tokens by the small model alone")
    t: int = Field(1, ge=0, le=4096, description="alternating with T fused tokens")


class CogenesisOptions(BaseModel):
    """Mode options in the request's optional `cogenesis` object."""

    model_config = ConfigDict(extra="forbid")

    guard_policy: GuardPolicy | None = None
    sketch_points: int | None = Field(None, ge=1, le=12)
    fusion: FusionRuleName | None = None
    alpha: float | None = Field(None, ge=0, le=1)
    gate_path: str | None = None
    draft_tokens: int | None = Field(None, ge=0, le=16)
    top_k: int | None = Field(None, ge=1, le=20)
    schedule: ScheduleOptions | None = None
    prefix_redaction: bool | None = None


class ChatCompletionRequest(BaseModel):
    # Unknown fields are rejected: a typo must not silently change what is sent.
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=64)
    user: str | None = Field(None, max_length=200)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)
    stop: str | list[str] | None = None
    cogenesis: CogenesisOptions | None = None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion(
    cid: str, model: str, text: str, finish: str, report: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": report.get("prompt_tokens", 0),
            "completion_tokens": report.get("completion_tokens", 0),
            "total_tokens": report.get("prompt_tokens", 0) + report.get("completion_tokens", 0),
        },
        "cogenesis": report,
    }


def chat_chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if report is not None:
        chunk["cogenesis"] = report
    return chunk


def openai_error(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
