"""Pydantic models for every message on the wire.

Every model forbids unknown fields, so a field that could smuggle private context is
rejected at the boundary instead of silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared_protocol import limits

TokenId = Annotated[int, Field(ge=0)]
Version = Literal["2"]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(WireModel):
    code: str
    message: str


class ErrorResponse(WireModel):
    error: ErrorBody


# The capability of a cloud that drafts rounds itself (``SessionStepRequest.propose``).
PROPOSE_CAPABILITY = "propose"


class InfoResponse(WireModel):
    protocol_version: Version = limits.PROTOCOL_VERSION
    engine: str
    model_id: str
    vocab_size: int
    tokenizer_fingerprint: str = Field(
        description="sha256 over the vocabulary (token id -> bytes); equal fingerprints "
        "mean token ids mean the same on both ends."
    )
    max_top_k: int
    max_draft_tokens: int = limits.MAX_DRAFT_TOKENS
    max_append_tokens: int = limits.MAX_APPEND_TOKENS
    max_session_tokens: int = limits.MAX_SESSION_TOKENS
    capabilities: list[str] = Field(description='e.g. ["sketch", "logits", "propose"]')


class SketchRequest(WireModel):
    protocol_version: Version = limits.PROTOCOL_VERSION
    instruction: str = Field(min_length=1, max_length=limits.MAX_INSTRUCTION_CHARS)
    max_points: int = Field(default=6, ge=1, le=limits.MAX_SKETCH_POINTS)
    max_tokens: int = Field(default=256, ge=limits.MIN_SKETCH_TOKENS, le=limits.MAX_SKETCH_TOKENS)


class SketchResponse(WireModel):
    protocol_version: Version = limits.PROTOCOL_VERSION
    points: list[Annotated[str, Field(max_length=limits.MAX_POINT_CHARS)]] = Field(
        max_length=limits.MAX_SKETCH_POINTS
    )
    model_id: str
    prompt_tokens: int
    completion_tokens: int


class SketchPointEvent(WireModel):
    """``POST /v1/sketch/stream``, SSE event ``point``: one outline point, sent as soon
    as its line is finished. The points of a stream are those /v1/sketch would return."""

    type: Literal["point"] = "point"
    index: int = Field(ge=0, lt=limits.MAX_SKETCH_POINTS)
    point: str = Field(max_length=limits.MAX_POINT_CHARS)


class SketchDoneEvent(WireModel):
    """SSE event ``done``, the last of a stream that succeeded."""

    type: Literal["done"] = "done"
    protocol_version: Version = limits.PROTOCOL_VERSION
    points: int = Field(ge=1, le=limits.MAX_SKETCH_POINTS, description="point events sent")
    model_id: str
    prompt_tokens: int
    completion_tokens: int


class SketchErrorEvent(WireModel):
    """SSE event ``error``: the stream failed after it began; nothing follows."""

    type: Literal["error"] = "error"
    error: ErrorBody


SketchEvent = Annotated[
    SketchPointEvent | SketchDoneEvent | SketchErrorEvent, Field(discriminator="type")
]


class TopK(WireModel):
    """Top-k next-token log-probs at one position.

    Values are log-softmax over the full vocabulary (normalized), sorted descending.
    Tokens outside the top-k are not sent; a receiver treats their mass as
    ``log(1 - sum(exp(logprobs)))`` spread over the rest of the vocabulary.
    """

    token_ids: list[TokenId]
    logprobs: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> TopK:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError("token_ids and logprobs must have the same length")
        return self


class SessionOpenRequest(WireModel):
    """Open a stateful logits session on a context-free prompt.

    Give exactly one of ``prompt`` (text, rendered with the cloud model's chat template
    as a single user turn) or ``prompt_token_ids`` (already tokenized by the edge).

    Reopening a session whose replica was lost (any replica may answer): the same
    prompt, plus ``append``, the tokens that session had committed, and ``draft``, the
    draft of the step that failed. The reply then answers that step too: ``next`` is the
    top-k after prompt + append and ``draft_positions`` the top-k after each drafted
    token. ``replaces`` names the lost session, so a replica that still holds it
    closes it.
    """

    protocol_version: Version = limits.PROTOCOL_VERSION
    prompt: str | None = Field(default=None, min_length=1, max_length=limits.MAX_PROMPT_CHARS)
    system: str | None = Field(default=None, max_length=limits.MAX_PROMPT_CHARS)
    prompt_token_ids: list[TokenId] | None = Field(
        default=None, min_length=1, max_length=limits.MAX_PROMPT_TOKENS
    )
    top_k: int = Field(default=10, ge=1, le=limits.MAX_TOP_K)
    # None rather than []: an ordinary open sends neither.
    append: list[TokenId] | None = Field(default=None, max_length=limits.MAX_SESSION_TOKENS)
    draft: list[TokenId] | None = Field(default=None, max_length=limits.MAX_DRAFT_TOKENS)
    replaces: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _exactly_one_prompt(self) -> SessionOpenRequest:
        if (self.prompt is None) == (self.prompt_token_ids is None):
            raise ValueError("give exactly one of prompt or prompt_token_ids")
        if self.system is not None and self.prompt is None:
            raise ValueError("system goes with prompt, not with prompt_token_ids")
        return self


class SessionOpenResponse(WireModel):
    protocol_version: Version = limits.PROTOCOL_VERSION
    session_id: str
    prompt_tokens: int
    top_k: int
    idle_timeout_s: float
    next: TopK = Field(description="top-k after the last prompt (and appended) token")
    draft_positions: list[TopK] | None = Field(
        default=None, description="top-k after each drafted token, when reopening"
    )


class SessionStepRequest(WireModel):
    """Advance a session and score a drafted continuation in one forward pass.

    The session first keeps ``accept`` tokens of the previous step's draft (the rest of
    that draft is rewound), then commits ``append`` (tokens the edge chose since), then
    scores ``draft`` without committing it. The response holds len(draft) + 1 positions:
    the top-k after the committed tokens, then after each drafted token.

    ``propose`` (instead of a draft; needs the "propose" capability): the cloud drafts
    itself. After committing it decodes up to ``propose`` tokens greedily from its own
    distribution (ending early at its end of generation) and returns them uncommitted in
    ``proposed``, with len(proposed) + 1 positions, exactly as if the edge had sent them
    as ``draft``. The next step's ``accept`` keeps a prefix of them.
    """

    protocol_version: Version = limits.PROTOCOL_VERSION
    accept: int = Field(default=0, ge=0, le=limits.MAX_DRAFT_TOKENS)
    append: list[TokenId] = Field(default_factory=list, max_length=limits.MAX_APPEND_TOKENS)
    draft: list[TokenId] = Field(default_factory=list, max_length=limits.MAX_DRAFT_TOKENS)
    propose: int = Field(default=0, ge=0, le=limits.MAX_DRAFT_TOKENS)
    top_k: int | None = Field(default=None, ge=1, le=limits.MAX_TOP_K)

    @model_validator(mode="after")
    def _draft_or_propose(self) -> SessionStepRequest:
        if self.draft and self.propose:
            raise ValueError("give draft (the edge drafts) or propose (the cloud drafts), not both")
        return self


class SessionStepResponse(WireModel):
    protocol_version: Version = limits.PROTOCOL_VERSION
    positions: list[TopK]
    session_tokens: int
    proposed: list[TokenId] | None = Field(
        default=None,
        max_length=limits.MAX_DRAFT_TOKENS,
        description="the cloud's own draft, when the step asked it to propose",
    )
