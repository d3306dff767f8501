"""Logits mode: the small model and the cloud pick every token together.

The small model runs on the PRIVATE prompt (context, task); the cloud session is opened
on the PUBLIC prompt only and then learns nothing but the generated token ids. At every
step the schedule decides whether the cloud is consulted; if so the fusion rule merges
the two next-token distributions, otherwise the small model decides alone.

Two ways to get the cloud's distributions, with identical output (docs/logits.md):
- step by step (``draft_tokens=0``): one step call per consulted token;
- draft and verify (``draft_tokens=N``): the small model drafts N tokens from its own
  distribution, the cloud scores them in one call (N + 1 positions), and the edge walks
  the positions, keeping drafted tokens while the chosen token equals the draft. The
  first difference is replaced by the chosen token and drafting starts again there.

One answer is one `LogitsLoop`: ``open`` starts both sides, ``step`` picks one token
(asking ``verify`` for the cloud's distribution; when the last scored draft does not
cover the position, it ``send``s a fresh ``draft`` and ``receive``s the scores),
``result`` sums it up. ``run`` does all of it under the small model's lock.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import ValidationError

from edge_agent.collab.drafter import DRAFTERS, ROUND_KINDS, Drafter, DrafterChoice, RoundKind
from edge_agent.collab.fusion import FusionRule, TopKArrays, as_topk, fuse, make_rule
from edge_agent.collab.gate import Gate
from edge_agent.collab.prefix_view import IdentityView, Tokenizer, make_view
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.sampling import SamplingParams, UniformStream, pick
from edge_agent.collab.schedule import Schedule
from edge_agent.guard.matcher import TermMatcher
from edge_agent.guard.placeholders import Placeholders
from edge_agent.outbound import CloudError, CloudUnreachable, CloudUsage, GuardRecord
from shared_protocol import (
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    TopK,
    limits,
)

TokenCallback = Callable[[int], Any]
Finish = Literal["stop", "length"]


class _Timer(Protocol):
    seconds: float


class LoopModel(Tokenizer, Protocol):
    """What the loop needs of the small model (``SmallModel`` fits, and the tests' toys)."""

    lock: AbstractContextManager[Any]
    timer: _Timer
    n_ctx: int

    @property
    def n_tokens(self) -> int: ...

    def start(
        self, tokens: Sequence[int], *, prefix_key: str | None = None, prefix_len: int = 0
    ) -> np.ndarray: ...

    def append(self, tokens: Sequence[int]) -> np.ndarray: ...

    def append_exact(self, tokens: Sequence[int]) -> np.ndarray: ...

    def rewind(self, n_tokens: int) -> None: ...

    def is_eos(self, token_id: int) -> bool: ...


class SessionClient(Protocol):
    """What the loop needs of the cloud (``CloudClient`` fits, and the tests' toys)."""

    def open_session(
        self,
        req: SessionOpenRequest,
        *,
        user_id: str,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | None = None,
    ) -> SessionOpenResponse: ...

    def step(
        self,
        session_id: str,
        req: SessionStepRequest,
        *,
        user_id: str,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | None = None,
    ) -> SessionStepResponse: ...

    def close_session(
        self, session_id: str, *, user_id: str, mode: str, usage: CloudUsage
    ) -> None: ...


@dataclass
class LogitsOptions:
    fusion: str = "mean"
    alpha: float = 0.5  # weight of the small model for fusion="weighted"
    gate: Gate | None = None  # for fusion="gate": loaded from the gates folder, by name
    schedule: Schedule = field(default_factory=Schedule.every_step)
    draft_tokens: int = 8  # 0 = step by step; with adaptive_draft, the most one call sends
    # Send what the small model drafted while the last call was out (see `draft`), so a
    # draft is as long as the round trip it hides; off: always draft `draft_tokens` first.
    adaptive_draft: bool = True
    top_k: int = 10
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    edge_k: int | None = None  # edge candidates per fused step; default: top_k
    draft_min_prob: float = 0.05  # stop drafting when P_small(whole draft) drops below
    lookahead: bool = True  # keep drafting on the device while a cloud call is in flight
    prefix_redaction: bool = True  # the cloud sees private spans as placeholders (needs a matcher)
    # Who drafts a round: the small model, the cloud (its own N = draft_tokens tokens), or
    # per round by measured speed (drafter.py). The cloud drafts only if it can, and
    # draft_tokens = 0 is step by step whoever drafts.
    drafter: Drafter = "edge"
    # Evaluate every small-model token batch-invariantly (as cloud/auto rounds always
    # do): the step-by-step reference for them, in tests and the bench.
    batch_invariant: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.draft_tokens <= limits.MAX_DRAFT_TOKENS:
            raise ValueError(f"draft_tokens must be in [0, {limits.MAX_DRAFT_TOKENS}]")
        if not 1 <= self.top_k <= limits.MAX_TOP_K:
            raise ValueError(f"top_k must be in [1, {limits.MAX_TOP_K}]")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if not 0.0 <= self.draft_min_prob < 1.0:
            raise ValueError("draft_min_prob must be in [0, 1)")
        if self.drafter not in DRAFTERS:
            raise ValueError(f"drafter must be one of {', '.join(DRAFTERS)}")
        SamplingParams(self.temperature, self.top_p)  # validates

    def rule(self) -> FusionRule:
        gate = self.gate if self.fusion == "gate" else None
        return make_rule(self.fusion, alpha=self.alpha, gate_model=gate)


@dataclass(frozen=True)
class PublicPrompt:
    """What the cloud session is opened on: text (rendered by the cloud's chat template,
    under `system`) or token ids. Never anything private."""

    text: str | None = None
    token_ids: tuple[int, ...] | None = None
    system: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.token_ids is None):
            raise ValueError("a public prompt is either text or token ids")

    @classmethod
    def of_tokens(cls, token_ids: Sequence[int]) -> PublicPrompt:
        return cls(token_ids=tuple(token_ids))

    def open_request(self, top_k: int) -> SessionOpenRequest:
        if self.text is not None:
            text = self.text[: limits.MAX_PROMPT_CHARS]
            return SessionOpenRequest(prompt=text, system=self.system, top_k=top_k)
        return SessionOpenRequest(prompt_token_ids=list(self.token_ids or ()), top_k=top_k)


@dataclass(frozen=True)
class CloudLink:
    """The cloud as one answer uses it: the session client, and what every call carries.

    `guard` is the public prompt's guard record (ledgered with the open call); its policy
    is also ledgered with every step, next to the prefix redactions that step released.
    `can_propose`: the cloud lists the "propose" capability (it drafts rounds itself).
    """

    client: SessionClient
    user_id: str
    usage: CloudUsage = field(default_factory=CloudUsage)
    mode: str = "logits"
    guard: GuardRecord | None = None
    can_propose: bool = False


@dataclass
class LogitsResult:
    tokens: list[int]
    text: str
    finish_reason: Finish
    generated_tokens: int
    collaborated: int  # tokens chosen by fusion with the cloud
    cloud_calls: int
    drafted: int  # drafted tokens sent to the cloud for scoring
    accepted: int  # drafted tokens kept
    small_model_evals: int  # tokens the small model evaluated after the prompt
    bytes_up: int
    bytes_down: int
    small_model_s: float
    cloud_wait_s: float
    wall_s: float
    degraded: bool
    degraded_reason: str | None
    seed: int
    fusion: str
    schedule: str
    draft_tokens: int
    # Prefix redaction (prefix_view.py): placeholders released to the cloud, fused
    # positions the small model decided alone because tokens were held back, matching time.
    prefix_redaction: bool = False
    redacted_spans: int = 0
    held_back_steps: int = 0
    prefix_guard_s: float = 0.0
    # Sessions reopened on another replica after theirs was lost (not a degradation).
    session_reopens: int = 0
    # Cloud-drafted rounds (drafter "cloud"/"auto"): tokens the cloud proposed, how many
    # of them were kept, and rounds by who drafted ("none": a step-by-step call).
    drafter: str = "edge"
    proposed: int = 0
    proposed_accepted: int = 0
    rounds: dict[str, int] = field(default_factory=dict)
    # The small model's compute in single-step units: its seconds over the mean seconds
    # of one single-token evaluation in this answer.
    small_model_steps: float = 0.0


# A reopened session whose replica is lost too: try the next one, then give up.
MAX_REOPEN_TRIES = 2


def _session_lost(exc: CloudError) -> bool:
    """The session is gone with its replica: unknown there, or the replica unreachable."""
    return exc.code == "session_not_found" or isinstance(exc, CloudUnreachable)


class _CloudSide:
    """The cloud session as the edge sees it: committed tokens, the scored draft.

    Tokens here are the CLOUD's copy of the answer (the view's `released` tokens), which
    equals the generated tokens unless prefix redaction replaced a private span. Without
    a link the cloud is never alive: the small model answers alone.
    """

    def __init__(self, link: CloudLink | None) -> None:
        self.link = link
        self.usage = link.usage if link is not None else CloudUsage()
        self.session_id: str | None = None
        self.alive = False
        self.failure: CloudError | None = None
        self.known = 0  # tokens of the cloud's copy it has committed
        self.draft: list[int] = []  # the uncommitted draft it scored last
        self.positions: list[TopKArrays] = []  # positions[i]: after known + draft[:i]
        self.vocab_size = 0
        self.accepted = 0  # drafted tokens kept, counted when the next call commits them
        self.proposal = False  # the scored draft is the cloud's own proposal
        self.proposed_accepted = 0  # of which proposed by the cloud
        self.opened_with: SessionOpenRequest | None = None  # the public prompt, to reopen
        self.reopens = 0  # sessions reopened after their replica was lost

    def _kw(self) -> dict[str, Any]:
        assert self.link is not None
        return {"user_id": self.link.user_id, "mode": self.link.mode, "usage": self.usage}

    def open(self, request: SessionOpenRequest, vocab_size: int) -> None:
        assert self.link is not None
        self.vocab_size = vocab_size
        reply = self.link.client.open_session(request, guard=self.link.guard, **self._kw())
        self.session_id = reply.session_id
        self.alive = True
        self.opened_with = request
        self.positions = [self._check(reply.next)]

    def lookup(self, released: Sequence[int]) -> TopKArrays | None:
        """The cloud's distribution after `released` (the cloud's copy of the whole
        generated prefix), if the scored draft covers it."""
        i = len(released) - self.known
        if not 0 <= i < len(self.positions):
            return None
        if list(released[self.known :]) != self.draft[:i]:
            return None
        return self.positions[i]

    def kept(self, released: Sequence[int]) -> int:
        """How many tokens of the scored draft `released` keeps."""
        tail = released[self.known :]
        n = 0
        while n < min(len(self.draft), len(tail)) and self.draft[n] == tail[n]:
            n += 1
        return n

    def step(
        self,
        released: Sequence[int],
        draft: list[int],
        guard: GuardRecord | None = None,
        propose: int = 0,
    ) -> None:
        """Sync the cloud to `released`, then score `draft` after it, or (`propose` > 0)
        let the cloud draft up to that many tokens itself (they become `draft`).

        A session lost with its replica (404 session_not_found, or no connection to it)
        is reopened on whichever replica answers, in the same call's place: see
        `_reopen`. Anything else fails the step (the answer then degrades).
        """
        accept = self.kept(released)
        self.accepted += accept
        if self.proposal:
            self.proposed_accepted += accept
        try:
            self._sync(released, accept, draft, guard, propose)
        except CloudError as exc:
            if not _session_lost(exc):
                raise
            self._reopen(released, draft, exc)
            if propose:  # the reopened session proposes in a call of its own
                self._sync(released, 0, [], guard, propose)

    def _reopen(self, released: Sequence[int], draft: list[int], lost: CloudError) -> None:
        """Open the session again: the public prompt, the tokens the cloud already had
        (its copy, `released`: all of it was sent before) and the failed step's draft,
        in one call, so it answers that step too. Nothing more leaves than before: the
        same bytes went out in the open and step calls this one replaces."""
        assert self.link is not None and self.opened_with is not None
        try:
            request = SessionOpenRequest.model_validate(
                {
                    **self.opened_with.model_dump(exclude_none=True),
                    "append": list(released) or None,
                    "draft": list(draft) or None,
                    "replaces": self.session_id,
                }
            )
        except ValidationError as exc:
            raise CloudError(f"{lost}; and the session cannot be reopened: {exc}") from exc
        failure = lost
        for _ in range(MAX_REOPEN_TRIES):
            try:
                reply = self.link.client.open_session(request, guard=self.link.guard, **self._kw())
            except CloudError as exc:
                if not _session_lost(exc):
                    raise
                failure = exc
                continue
            rows = [reply.next, *(reply.draft_positions or ())]
            if len(rows) != len(draft) + 1:
                raise CloudError(f"cloud reopened with {len(rows)} positions for {len(draft)}")
            self.session_id = reply.session_id
            self.positions = [self._check(row) for row in rows]
            self.known, self.draft, self.proposal = len(released), list(draft), False
            self.reopens += 1
            return
        raise failure

    def _sync(
        self,
        released: Sequence[int],
        accept: int,
        draft: list[int],
        guard: GuardRecord | None,
        propose: int = 0,
    ) -> None:
        append = list(released[self.known + accept :])
        while len(append) > limits.MAX_APPEND_TOKENS:  # long runs without the cloud
            chunk, append = append[: limits.MAX_APPEND_TOKENS], append[limits.MAX_APPEND_TOKENS :]
            self._call(SessionStepRequest(accept=accept, append=chunk), guard)
            self.known += accept + len(chunk)
            self.draft, self.proposal, accept = [], False, 0
        request = SessionStepRequest(accept=accept, append=append, draft=draft, propose=propose)
        self.draft, self.positions = self._call(request, guard)
        self.known += accept + len(append)
        self.proposal = propose > 0

    def _call(
        self, request: SessionStepRequest, guard: GuardRecord | None
    ) -> tuple[list[int], list[TopKArrays]]:
        """One step call: the draft it scored (the edge's, or the cloud's proposal) and
        the positions, checked against each other."""
        assert self.link is not None and self.session_id is not None
        kw = self._kw() if guard is None else {**self._kw(), "guard": guard}
        reply = self.link.client.step(self.session_id, request, **kw)
        draft = list(request.draft)
        if request.propose:
            draft = list(reply.proposed or ())
            if len(draft) > request.propose or any(t >= self.vocab_size for t in draft):
                raise CloudError(f"cloud sent a bad proposal for {request.propose} tokens")
        elif reply.proposed is not None:
            raise CloudError("cloud sent a proposal it was not asked for")
        if len(reply.positions) != len(draft) + 1:
            raise CloudError(
                f"cloud returned {len(reply.positions)} positions for a draft of {len(draft)}"
            )
        return draft, [self._check(p) for p in reply.positions]

    def _check(self, topk: TopK) -> TopKArrays:
        try:
            arrays = as_topk(topk, self.vocab_size)
        except ValueError as exc:
            raise CloudError(f"cloud sent a bad top-k: {exc}") from exc
        if len(arrays.token_ids) == 0:
            raise CloudError("cloud sent an empty top-k")
        return arrays

    def fail(self, exc: CloudError) -> None:
        self.alive = False
        self.failure = exc
        self.positions, self.draft, self.proposal = [], [], False

    def close(self) -> None:
        if self.link is None or self.session_id is None:
            return
        if self.failure is not None and (self.failure.status is None or self.failure.status == 404):
            return  # unreachable or already gone: idle expiry cleans up
        try:
            self.link.client.close_session(self.session_id, **self._kw())
        except CloudError:
            pass


class _Edge:
    """The small model's context: prompt + generated + (drafted, not yet decided)."""

    def __init__(
        self, model: LoopModel, n_prompt: int, first: np.ndarray, *, exact: bool = False
    ) -> None:
        self.model = model
        self.n_prompt = n_prompt
        # Batch-invariant evaluation (needed once a round is scored in one batch): a lone
        # token is then decoded with the one before it, so every path gives the same rows.
        self.exact = exact
        self.generated = 0
        self.extra: list[int] = []  # drafted tokens after the generated ones
        self.extra_lp: list[float] = []  # the small model's log-prob of each of them
        self.logprobs: list[np.ndarray] = [first]  # [i]: after generated + extra[:i]
        self.evals = 0  # tokens evaluated after the prompt (drafts included)
        self.single_s = 0.0  # seconds of single-token evaluations, and how many
        self.singles = 0
        # A generated token not evaluated yet (exact mode): if a cloud round comes next,
        # it is evaluated in the proposal's batch instead of alone (one step saved).
        self.pending: int | None = None

    def room(self) -> int:
        return self.model.n_ctx - self.model.n_tokens - 1

    def room_after_generated(self) -> int:
        return self.model.n_ctx - self.n_prompt - self.generated - 1

    def _eval_one(self, token: int) -> np.ndarray:
        seconds = self.model.timer.seconds
        row = self.model.append_exact([token])[-1] if self.exact else self.model.append([token])
        self.single_s += self.model.timer.seconds - seconds
        self.singles += 1
        self.evals += 1
        return row

    def push_draft(self, token: int) -> None:
        self.extra_lp.append(float(self.logprobs[-1][token]))
        self.logprobs.append(self._eval_one(token))
        self.extra.append(token)

    def take(self, tokens: Sequence[int]) -> None:
        """Make `tokens` (the cloud's proposal) the drafts: the ones the drafts already
        start with are kept, the rest of the drafts rewound, and what is left evaluated
        in ONE batch (always batch-invariant), after the pending token if there is one."""
        if self.pending is not None:  # no drafts exist: evaluate it with the proposal
            rows = self.model.append_exact([self.pending, *tokens])
            self.evals += len(rows)
            self.pending, self.logprobs = None, [rows[0]]
            self._push_rows(list(tokens), rows[1:])
            return
        same = 0
        while same < min(len(tokens), len(self.extra)) and tokens[same] == self.extra[same]:
            same += 1
        if same < len(self.extra):
            self.model.rewind(self.n_prompt + self.generated + same)
            del self.extra[same:], self.extra_lp[same:], self.logprobs[same + 1 :]
        rest = list(tokens[same:])
        if rest:
            rows = self.model.append_exact(rest)
            self.evals += len(rest)
            self._push_rows(rest, rows)

    def _push_rows(self, tokens: list[int], rows: Sequence[np.ndarray]) -> None:
        for token, row in zip(tokens, rows, strict=True):
            self.extra_lp.append(float(self.logprobs[-1][token]))
            self.logprobs.append(row)
            self.extra.append(token)

    def ensure(self) -> None:
        """Evaluate the pending token, if any: its log-probs are needed now."""
        if self.pending is not None:
            token, self.pending = self.pending, None
            self.logprobs = [self._eval_one(token)]

    def drop_drafts(self) -> None:
        if self.extra:
            self.model.rewind(self.n_prompt + self.generated)
            self.extra, self.extra_lp = [], []
            self.logprobs = self.logprobs[:1]

    def advance(self, token: int) -> None:
        """Commit `token` as the next generated one."""
        if self.extra and self.extra[0] == token:
            self.extra.pop(0)
            self.extra_lp.pop(0)
            self.logprobs.pop(0)
        elif self.exact:
            self.drop_drafts()
            self.pending, self.logprobs = token, []  # evaluated by `ensure` or `take`
        else:
            self.drop_drafts()
            self.logprobs = [self._eval_one(token)]
        self.generated += 1


class LogitsLoop:
    """One answer in logits mode; never raises for cloud trouble (it degrades).

    `cloud` None: the small model answers alone. `rule` overrides `options.fusion` (a
    preloaded gate, say). `matcher` (the user's profile terms) turns on prefix redaction
    unless `options.prefix_redaction` is off; `placeholders` numbers its redactions as
    the rest of the request does. `on_token` sees every generated token as it is
    chosen; when it returns True the answer ends there with finish "stop" (a stop
    sequence, or a client that went away). A loop runs once: ``LogitsLoop(...).run()``.
    """

    def __init__(
        self,
        model: LoopModel,
        prompt: PrivatePrompt,
        public: PublicPrompt,
        options: LogitsOptions,
        *,
        cloud: CloudLink | None = None,
        rule: FusionRule | None = None,
        matcher: TermMatcher | None = None,
        placeholders: Placeholders | None = None,
        on_token: TokenCallback | None = None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.public = public
        self.options = options
        self.on_token = on_token
        self.rule = rule or options.rule()
        self.params = SamplingParams(options.temperature, options.top_p)
        self.uniforms = UniformStream(options.seed)
        self.edge_k = options.edge_k or options.top_k
        self.min_logprob = (
            math.log(options.draft_min_prob) if options.draft_min_prob > 0 else -math.inf
        )
        self.cloud = _CloudSide(cloud)
        self.streaming_drafts = options.adaptive_draft and options.draft_tokens > 0
        # Everything the cloud learns of the answer goes through the view (prefix_view.py).
        self.view = make_view(matcher if options.prefix_redaction else None, model, placeholders)
        # Who drafts: cloud rounds only with a cloud that proposes (drafter.py for auto).
        proposes = cloud is not None and cloud.can_propose and options.draft_tokens > 0
        self.drafter: Drafter = options.drafter if proposes else "edge"
        self.chooser = (
            DrafterChoice(cloud_tokens=options.draft_tokens) if self.drafter == "auto" else None
        )
        self.rounds: dict[str, int] = dict.fromkeys(ROUND_KINDS, 0)
        self.proposed = 0
        self._kind: RoundKind = "none"  # the kind of the round in flight (or last)
        self.edge: _Edge | None = None
        self.generated: list[int] = []
        self.finish: Finish = "length"
        self.collaborated = self.drafted = self.held_back = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None  # the step call in flight
        self._in_flight = 0  # draft tokens it scores
        self._wait0 = 0.0  # the usage's wait when it was sent
        usage = self.cloud.usage
        self._usage0 = (usage.calls, usage.bytes_up, usage.bytes_down, usage.wait_s)
        self._started = time.perf_counter()
        self._small_s = 0.0

    # --- the whole answer ------------------------------------------------------------

    def run(self) -> LogitsResult:
        self._started = time.perf_counter()
        with self.model.lock:
            timer0 = self.model.timer.seconds
            try:
                self.open()
                while self.step():
                    pass
                self._edge().drop_drafts()
            finally:
                self.close()
            self._small_s = self.model.timer.seconds - timer0
        return self.result()

    def open(self) -> None:
        """Start the small model on the private prompt and the cloud on the public one."""
        if self.edge is not None:
            raise RuntimeError("a LogitsLoop answers once; make a new one")
        first = self.model.start(
            self.prompt.tokens, prefix_key=self.prompt.prefix_key, prefix_len=self.prompt.prefix_len
        )
        # Cloud rounds score in batches: then every evaluation must give the same numbers.
        exact = self.drafter != "edge" or self.options.batch_invariant
        self.edge = _Edge(self.model, len(self.prompt.tokens), first, exact=exact)
        if self.cloud.link is None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogenesis-cloud")
        try:
            self.cloud.open(self.public.open_request(self.options.top_k), len(first))
        except ValidationError as exc:
            self.cloud.fail(CloudError(f"public prompt rejected before sending: {exc}"))
        except CloudError as exc:
            self.cloud.fail(exc)

    def step(self) -> bool:
        """Choose and commit the next token; False once the answer is finished."""
        edge = self._edge()
        position = len(self.generated)
        consult = self.cloud.alive and self.options.schedule.should_call(position)
        dist = self.verify() if consult else None
        edge.ensure()
        if dist is not None:
            fused = fuse(self.rule, edge.logprobs[0], dist, edge_k=self.edge_k)
            token = pick(fused.logprobs, self.params, self.uniforms.at(position), fused.token_ids)
            self.collaborated += 1
        else:
            token = pick(edge.logprobs[0], self.params, self.uniforms.at(position))
        if self.model.is_eos(token):
            self.finish = "stop"
            return False
        self.generated.append(token)
        self.view.feed(token)
        if self.on_token is not None and self.on_token(token) is True:
            self.finish = "stop"
            return False
        if len(self.generated) >= self.options.max_tokens:
            return False
        if len(self.prompt.tokens) + len(self.generated) + 1 >= self.model.n_ctx:
            return False  # the small model's context is full
        edge.advance(token)
        return True

    def verify(self) -> TopKArrays | None:
        """The cloud's distribution at the next position, or None: the edge decides alone.

        The last scored draft may already cover the position; if not, a fresh draft is
        sent and its reply awaited (the small model drafts on meanwhile, with lookahead).
        """
        if not self.view.in_sync:
            self.held_back += 1  # the cloud has not seen the whole prefix: edge alone
            return None
        dist = self.cloud.lookup(self.view.released)
        if dist is not None:
            return dist
        kind = self._next_kind()
        if kind == "cloud":
            self.send([], propose=self._proposal_length())
        else:
            self.send(self.draft() if kind == "edge" else [])
        return self.receive()

    def send(self, draft: list[int], propose: int = 0) -> None:
        """Start one step call: sync the cloud to the released prefix, score `draft`
        (what of it the view releases), or let the cloud propose `propose` tokens. The
        reply is awaited by `receive`."""
        assert self._executor is not None and self._pending is None
        self._observe_last_round()
        sent, record = self._through_view(draft)
        self._kind = "cloud" if propose else "edge" if sent else "none"
        self.rounds[self._kind] += 1
        self._in_flight = len(sent)
        self._wait0 = self.cloud.usage.wait_s
        self._pending = self._executor.submit(
            self.cloud.step, list(self.view.released), sent, record, propose
        )

    def receive(self) -> TopKArrays | None:
        """Wait for the call `send` started; the cloud's distribution at the next
        position, or None when the cloud failed (the answer then degrades)."""
        assert self._pending is not None
        dist = None
        try:
            # Not while the cloud drafts: measured here, the edge's own drafts rarely
            # matched the proposal and took the cores the cloud decoded on (docs/logits.md).
            if self.options.lookahead and self._kind != "cloud":
                self._draft_while_waiting(self._pending)
            self._pending.result()
            wait = self.cloud.usage.wait_s - self._wait0
            if self._kind == "cloud":
                self._take_proposal(wait)
            else:
                if self.chooser is not None:
                    self.chooser.observe_edge_wait(wait)
                self.drafted += self._in_flight
            dist = self.cloud.lookup(self.view.released)
        except CloudError as exc:
            self.cloud.fail(exc)
        self._pending = None
        return dist

    def draft(self) -> list[int]:
        """Draft from the small model's own distribution, with the uniforms of the positions.

        A drafted token at position s + i is exactly what the small model alone would pick
        there, so drafts already in the context (from lookahead) are reused as they are,
        and on local (unscheduled) positions a draft is always kept. What is sent stops
        at `draft_tokens`, or earlier where the small model's probability of the whole
        draft drops below `draft_min_prob` (uncertain tokens are where fusion overrules it).

        Adaptive (streaming) drafts send what lookahead drafted while the last call was
        out, and draft one token first only when there is none: the cloud never waits
        for the device to draft, and a draft is as long as the round trip it hid (short
        on loopback, long across a network). Fixed drafts draft up to `draft_tokens` first.
        """
        edge = self._edge()
        room = self.options.max_tokens - len(self.generated) - 1
        n = max(0, min(self.options.draft_tokens, room))
        target = min(n, 1) if self.streaming_drafts and not edge.extra else n
        sent, total = 0, 0.0  # lookahead drafts skip the floor: apply it to what is sent
        while sent < min(n, len(edge.extra)) and total + edge.extra_lp[sent] >= self.min_logprob:
            total += edge.extra_lp[sent]
            sent += 1
        if sent == len(edge.extra):
            while len(edge.extra) < target and self._draft_one(self.min_logprob):
                sent += 1
        return edge.extra[:sent]

    def close(self) -> None:
        """Let an in-flight call finish (the device failed mid-call), close the session."""
        if self._pending is not None:
            with contextlib.suppress(CloudError):
                self._pending.result()
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self.cloud.close()

    def result(self) -> LogitsResult:
        cloud, usage, view = self.cloud, self.cloud.usage, self.view
        calls0, up0, down0, wait0 = self._usage0
        tail = cloud.kept(view.released) if cloud.alive else 0  # kept of the last draft
        accepted = cloud.accepted + tail
        proposed_accepted = cloud.proposed_accepted + (tail if cloud.proposal else 0)
        edge = self.edge
        step_s = edge.single_s / edge.singles if edge is not None and edge.singles else 0.0
        degraded = cloud.failure is not None
        # str(failure) starts with its kind: cloud busy, unreachable, timed out, error.
        reason = f"{cloud.failure}; finished on the device" if degraded else None
        return LogitsResult(
            tokens=self.generated,
            text=self.model.detokenize(self.generated).decode("utf-8", errors="replace"),
            finish_reason=self.finish,
            generated_tokens=len(self.generated),
            collaborated=self.collaborated,
            cloud_calls=usage.calls - calls0,
            drafted=self.drafted,
            accepted=accepted - proposed_accepted,
            small_model_evals=self.edge.evals if self.edge is not None else 0,
            bytes_up=usage.bytes_up - up0,
            bytes_down=usage.bytes_down - down0,
            small_model_s=self._small_s,
            cloud_wait_s=usage.wait_s - wait0,
            wall_s=time.perf_counter() - self._started,
            degraded=degraded,
            degraded_reason=reason,
            seed=self.uniforms.seed,
            fusion=self.rule.name,
            schedule=str(self.options.schedule),
            draft_tokens=self.options.draft_tokens,
            prefix_redaction=not isinstance(view, IdentityView),
            redacted_spans=len(view.redactions),
            held_back_steps=self.held_back,
            prefix_guard_s=view.seconds,
            session_reopens=cloud.reopens,
            drafter=self.drafter,
            proposed=self.proposed,
            proposed_accepted=proposed_accepted,
            rounds=dict(self.rounds),
            small_model_steps=self._small_s / step_s if step_s > 0 else 0.0,
        )

    # --- helpers ---------------------------------------------------------------------

    def _edge(self) -> _Edge:
        assert self.edge is not None, "open() first"
        return self.edge

    def _next_kind(self) -> RoundKind:
        """Who drafts the round about to be sent."""
        if self.drafter == "edge" or self._proposal_length() < 1:
            return "edge"
        if self.chooser is None:
            return "cloud"
        edge = self._edge()
        if self.chooser.step_s is None and edge.singles:  # no edge draft timed yet
            self.chooser.observe_step(edge.single_s / edge.singles)
        return self.chooser.next_round(self.options.draft_tokens)

    def _proposal_length(self) -> int:
        """N of a cloud round: draft_tokens, within max_tokens and the small model's room."""
        edge = self._edge()
        left = self.options.max_tokens - len(self.generated) - 1
        return max(0, min(self.options.draft_tokens, left, edge.room_after_generated()))

    def _observe_last_round(self) -> None:
        """Before a new call: how much of the last round's draft the answer kept."""
        if not self.cloud.draft:
            return
        drafted, kept = len(self.cloud.draft), self.cloud.kept(self.view.released)
        if self.cloud.proposal:
            if self.chooser is not None:
                self.chooser.cloud.observe(drafted, kept)
            return
        if self.chooser is not None:
            self.chooser.edge.observe(drafted, kept)

    def _take_proposal(self, wait: float) -> None:
        """The cloud's proposal arrived: the small model scores it in one batch (keeping
        what lookahead drafted the same), and the round's cost is noted for auto."""
        proposal = self.cloud.draft
        self.proposed += len(proposal)
        before = self.model.timer.seconds
        self._edge().take(proposal)
        if self.chooser is not None:
            batch_s = self.model.timer.seconds - before
            step_s = self.chooser.step_s or 0.0  # the fused token after the kept run
            self.chooser.observe_cloud_round(wait + batch_s + step_s)

    def _through_view(self, draft: list[int]) -> tuple[list[int], GuardRecord | None]:
        """The part of an (edge) draft the cloud may score, and the step's ledger record.

        The draft is fed to a copy of the view: only what it releases is sent (tokens held
        back at the draft's end are not), which may include generated tokens held so far.
        """
        ahead = self.view.fork()
        for token in draft:
            ahead.feed(token)
        released = self.view.released
        sent = ahead.released[len(released) :][: limits.MAX_DRAFT_TOKENS]
        guard = self.cloud.link.guard if self.cloud.link is not None else None
        if guard is None:
            return sent, None
        findings = ahead.records(self.cloud.known, len(released) + len(sent))
        return sent, GuardRecord(policy=guard.policy, findings=findings)

    def _draft_one(self, min_logprob: float) -> bool:
        """Draft the next token after the current drafts.

        False (nothing drafted) at EOS, when the context is full, or when the small model's
        probability of all its drafts so far would fall below the confidence floor: that
        position is then left to the next call (it is scored as the position after the
        draft anyway).
        """
        edge = self._edge()
        edge.ensure()
        if edge.room() < 1:
            return False
        lp = edge.logprobs[-1]
        token = pick(lp, self.params, self.uniforms.at(len(self.generated) + len(edge.extra)))
        if self.model.is_eos(token):
            return False
        if sum(edge.extra_lp) + float(lp[token]) < min_logprob:
            return False
        seconds = self.model.timer.seconds
        edge.push_draft(token)
        if self.chooser is not None:
            self.chooser.observe_step(self.model.timer.seconds - seconds)
        return True

    def _draft_while_waiting(self, pending: Future) -> None:
        """Lookahead: while the cloud scores a draft, draft on past it (on the device).

        If the whole draft is kept these tokens become the next draft; if not, they are
        rewound like any rejected draft. The answer does not depend on it. The device would
        be idle meanwhile, so the confidence floor does not apply here (only to what is
        sent next).
        """
        edge = self._edge()
        # Streaming drafts: as far as the wait lasts (bounded by what one call may send).
        ahead = limits.MAX_DRAFT_TOKENS if self.streaming_drafts else self.options.draft_tokens
        cap = min(
            len(edge.extra) + max(ahead, 1),
            self.options.max_tokens - len(self.generated) - 1,
        )
        while not pending.done() and len(edge.extra) < cap:
            if not self._draft_one(-math.inf):
                break
