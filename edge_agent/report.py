"""The typed report of one completion: the response's ``cogenesis`` object.

Sections that do not apply to a mode (``sketch_points``, ``guard``, ``logits``) and a
missing ``degraded_reason`` are left out of the JSON rather than sent as null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from edge_agent.collab.logits import LogitsResult
from edge_agent.guard.result import Policy
from edge_agent.job import Mode
from edge_agent.prompt_budget import BudgetReport

Finish = Literal["stop", "length"]


class LogitsReport(BaseModel):
    """What logits mode did: how many tokens were fused, drafted and kept."""

    generated_tokens: int
    collaborated: int
    drafted: int
    accepted: int
    fusion: str
    schedule: str
    draft_tokens: int
    seed: int
    prefix_redaction: bool
    redacted_spans: int
    held_back_steps: int
    prefix_guard_s: float
    session_reopens: int = 0  # sessions reopened on another replica (not degraded)
    # Rounds drafted by the cloud (cogenesis.drafter): who drafted, what the cloud
    # proposed and how much of it was kept; the small model's compute in single steps.
    drafter: str = "edge"
    proposed: int = 0
    proposed_accepted: int = 0
    rounds: dict[str, int] = Field(default_factory=dict)
    small_model_steps: float = 0.0

    @classmethod
    def of(cls, result: LogitsResult) -> LogitsReport:
        return cls.model_validate(result, from_attributes=True)


class CompletionReport(BaseModel):
    mode: Mode
    guard_policy: Policy
    degraded: bool = False
    degraded_reason: str | None = None
    sketch_points: list[str] | None = None
    guard: dict[str, Any] | None = None  # the guard's ledger record of the public text
    logits: LogitsReport | None = None
    budget: BudgetReport | None = None  # what the private prompt's token budget left out
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefix_cached_tokens: int = 0
    small_model_s: float = 0.0
    cloud_calls: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cloud_wait_s: float = 0.0  # a streamed outline: only the wait with nothing else to do
    total_s: float = 0.0
    # Sketch mode: from the outline's end (done, failed or left out) to the first text.
    outline_to_first_token_s: float | None = None
    # The choice's finish_reason, computed once by the gateway; not part of `cogenesis`.
    finish_reason: Finish = Field("stop", exclude=True)

    def degrade(self, reason: str | None) -> None:
        self.degraded = True
        self.degraded_reason = reason

    @model_serializer(mode="wrap")
    def _leave_out_empty_sections(self, handler: SerializerFunctionWrapHandler) -> dict:
        return {key: value for key, value in handler(self).items() if value is not None}
