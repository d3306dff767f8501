"""One completion to run: the mode, the user's context, the task, every option resolved.

Built from a request by ``ChatCompletionRequest.to_job`` (request values over the
server's defaults, in that one place); the gateway runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from edge_agent.collab.logits import LogitsOptions
from edge_agent.guard.result import Policy
from edge_agent.store.context import UserContext

Mode = Literal["local", "cogenesis-sketch", "cogenesis-logits"]
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class CompletionJob:
    mode: Mode
    ctx: UserContext
    task: str
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    guard_policy: Policy = "redact"
    sketch_points: int = 6  # outline points asked of the cloud (sketch mode)
    logits: LogitsOptions | None = None  # the loop's options (logits mode), sampling as above

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.mode == "cogenesis-logits" and self.logits is None:
            raise ValueError("a logits-mode job needs its loop options")
