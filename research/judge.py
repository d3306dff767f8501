"""The LLM judge: three 1-10 ratings of a written answer, in our own wording.

- ``overall``: overall quality, judged with the person's profile and writing history;
- ``personal``: personalization, judged with the same;
- ``overall_blind``: overall quality, judged without the profile.

The judge ends its answer with ``Rating: [[N]]``. :func:`parse_rating` reads that, or a
few looser forms a weak judge writes instead; when it finds none, the rating is missing
(``None``) and is reported as missing, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from research.llm import ChatLlm, LlmError

RUBRICS = ("overall", "personal", "overall_blind")
RUBRIC_TITLES = {
    "overall": "overall (with profile)",
    "personal": "personalization",
    "overall_blind": "overall (no profile)",
}

JUDGE_SYSTEM = (
    "You are a careful, impartial reviewer of writing. You read a writing request, the "
    "text written for it and, when given, facts about the person who asked. Explain your "
    "judgement in one or two sentences, then give your rating."
)
_ASK = {
    "overall": (
        "Judge how well the answer fulfils the request for the person described below: "
        "helpfulness, relevance, accuracy, depth, creativity and detail, and whether it "
        "suits what this person would want."
    ),
    "personal": (
        "Judge only how personal the answer is: does it draw on this person's facts and "
        "circumstances, and does it sound like them (compare their past writing), rather "
        "than reading as if written for anyone?"
    ),
    "overall_blind": (
        "Judge how well the answer fulfils the request: helpfulness, relevance, accuracy, "
        "depth, creativity and detail."
    ),
}
_FORMAT = (
    "End with one line in exactly this form: Rating: [[N]], where N is a whole number "
    "from 1 (worst) to 10 (best)."
)

# --- parsing -------------------------------------------------------------------------

_NUMBER = r"(?<![\d.])(\d{1,2}(?:\.\d+)?)(?![\d])"
_PATTERNS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*(?:/\s*10\s*)?\]\]"),
    # Only with a colon or "=": "a score of 10 is perfect" describes the scale.
    re.compile(r"\b(?:rating|score)\s*[:=]\s*\**\s*\[{0,2}\s*" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE),
)
_RANGE_BEFORE = re.compile(r"(?:\d\s*(?:-|–)|\bto|\bfrom|\bbetween)\s*$", re.IGNORECASE)
_RANGE_AFTER = re.compile(r"^\s*(?:-|–|to\b|and\b)\s*\d", re.IGNORECASE)


def parse_rating(text: str) -> float | None:
    """The judge's rating in 1..10, or None when the text holds none.

    Forms, strongest first; within a form the last one wins (a judge states its rating
    at the end): ``[[7]]`` (also ``[[7/10]]``, ``[[ 7.5 ]]``); ``Rating: 7`` /
    ``Score: [7]``; ``7/10`` / ``7 out of 10``. A number that is an end of a range
    ("1-10", "from 1 to 10 out of 10") or lies outside 1..10 is no rating: a small
    judge that describes the scale must not be read as having rated.
    """
    for pattern in _PATTERNS:
        values = [
            float(m.group(1))
            for m in pattern.finditer(text)
            if not _RANGE_BEFORE.search(text, 0, m.start(1))
            and not _RANGE_AFTER.match(text[m.end(1) :])
        ]
        if values:
            value = values[-1]
            return value if 1.0 <= value <= 10.0 else None
    return None


# --- prompts -------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeLimits:
    """How much of the person's context the judge reads (small judges have small windows)."""

    history_items: int = 2
    history_chars: int = 600
    answer_chars: int = 3000


def judge_messages(
    rubric: str,
    task: str,
    answer: str,
    profile_text: str,
    history: Sequence[tuple[str, str]],
    limits: JudgeLimits = JudgeLimits(),
) -> list[dict[str, str]]:
    parts = [_ASK[rubric], ""]
    if rubric != "overall_blind":
        parts += ["[The person]", profile_text.strip(), ""]
        samples = list(history)[: limits.history_items]
        if samples:
            parts.append("[Their past writing]")
            for title, text in samples:
                parts += [f"# {title}", _clip(text, limits.history_chars)]
            parts.append("")
    parts += [
        "[Request]",
        task.strip(),
        "",
        "[Answer]",
        _clip(answer.strip(), limits.answer_chars) or "(empty)",
        "[End of answer]",
        "",
        _FORMAT,
    ]
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\n".join(parts)},
    ]


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " ..."


# --- judging -------------------------------------------------------------------------


@dataclass
class Rating:
    score: float | None  # None: the judge gave no readable rating
    attempts: int
    raw: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "attempts": self.attempts,
            "raw": self.raw,
            "error": self.error,
        }


class Judge:
    """Asks the judge once greedily; if no rating can be read, once more with sampling
    (a different request, so also cached apart). Still nothing: missing."""

    def __init__(
        self,
        llm: ChatLlm,
        *,
        max_tokens: int = 256,
        attempts: int = 2,
        limits: JudgeLimits = JudgeLimits(),
    ) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.attempts = max(1, attempts)
        self.limits = limits

    def rate(
        self,
        rubric: str,
        task: str,
        answer: str,
        profile_text: str,
        history: Sequence[tuple[str, str]],
    ) -> Rating:
        messages = judge_messages(rubric, task, answer, profile_text, history, self.limits)
        raw: list[str] = []
        for attempt in range(self.attempts):
            sampling = {"temperature": 0.0} if attempt == 0 else {"temperature": 0.7}
            try:
                reply = self.llm.complete(
                    messages, max_tokens=self.max_tokens, seed=attempt, **sampling
                )
            except LlmError as exc:
                return Rating(None, attempt + 1, raw, error=str(exc))
            raw.append(reply.text)
            score = parse_rating(reply.text)
            if score is not None:
                return Rating(score, attempt + 1, raw)
        return Rating(None, self.attempts, raw)
