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
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from edge_agent.collab.fusion import FusionRule, TopKArrays, as_topk, fuse, make_rule
from edge_agent.collab.gate import Gate
from edge_agent.collab.prefix_view import IdentityView, View, make_view
from edge_agent.collab.sampling import SamplingParams, UniformStream, pick
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudError, CloudUsage, GuardRecord
from shared_protocol import SessionOpenRequest, SessionStepRequest, TopK, limits

TokenCallback = Callable[[int], Any]


@dataclass
class LogitsOptions:
    fusion: str = "mean"
    alpha: float = 0.5  # weight of the small model for fusion="weighted"
    gate_path: Path | None = None  # for fusion="gate"
    schedule: Schedule = field(default_factory=Schedule.every_step)
    draft_tokens: int = 8  # 0 = step by step
    top_k: int = 10
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    public_system: str | None = None  # system message for a public prompt given as text
    edge_k: int | None = None  # edge candidates per fused step; default: top_k
    draft_min_prob: float = 0.05  # stop drafting when P_small(whole draft) drops below
    lookahead: bool = True  # keep drafting on the device while a cloud call is in flight
    prefix_redaction: bool = True  # the cloud sees private spans as placeholders (needs a matcher)

    def __post_init__(self) -> None:
        if not 0 <= self.draft_tokens <= limits.MAX_DRAFT_TOKENS:
            raise ValueError(f"draft_tokens must be in [0, {limits.MAX_DRAFT_TOKENS}]")
        if not 1 <= self.top_k <= limits.MAX_TOP_K:
            raise ValueError(f"top_k must be in [1, {limits.MAX_TOP_K}]")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if not 0.0 <= self.draft_min_prob < 1.0:
            raise ValueError("draft_min_prob must be in [0, 1)")
        SamplingParams(self.temperature, self.top_p)  # validates

    def rule(self) -> FusionRule:
        gate = Gate.load(self.gate_path) if self.fusion == "gate" and self.gate_path else None
        return make_rule(self.fusion, alpha=self.alpha, gate_model=gate)


@dataclass
class LogitsResult:
    tokens: list[int]
    text: str
    finish_reason: Literal["stop", "length"]
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("tokens")
        data.pop("text")
        return data


class _CloudSide:
    """The cloud session as the edge sees it: committed tokens, the scored draft.

    Tokens here are the CLOUD's copy of the answer (the view's `released` tokens), which
    equals the generated tokens unless prefix redaction replaced a private span.
    """

    def __init__(self, client: Any, user_id: str, usage: CloudUsage, mode: str) -> None:
        self.client = client
        self.user_id = user_id
        self.usage = usage
        self.mode = mode
        self.session_id: str | None = None
        self.alive = False
        self.failure: CloudError | None = None
        self.known = 0  # tokens of the cloud's copy it has committed
        self.draft: list[int] = []  # the uncommitted draft it scored last
        self.positions: list[TopKArrays] = []  # positions[i]: after known + draft[:i]
        self.vocab_size = 0
        self.accepted = 0  # drafted tokens kept, counted when the next call commits them

    def _kw(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "mode": self.mode, "usage": self.usage}

    def open(self, request: SessionOpenRequest, vocab_size: int, guard: Any) -> None:
        self.vocab_size = vocab_size
        reply = self.client.open_session(request, guard=guard, **self._kw())
        self.session_id = reply.session_id
        self.alive = True
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
        self, released: Sequence[int], draft: list[int], guard: GuardRecord | None = None
    ) -> None:
        """Sync the cloud to `released`, then score `draft` after it."""
        accept = self.kept(released)
        self.accepted += accept
        append = list(released[self.known + accept :])
        while len(append) > limits.MAX_APPEND_TOKENS:  # long runs without the cloud
            chunk, append = append[: limits.MAX_APPEND_TOKENS], append[limits.MAX_APPEND_TOKENS :]
            self._call(SessionStepRequest(accept=accept, append=chunk), 0, guard)
            self.known += accept + len(chunk)
            self.draft, accept = [], 0
        self.positions = self._call(
            SessionStepRequest(accept=accept, append=append, draft=draft), len(draft), guard
        )
        self.known += accept + len(append)
        self.draft = list(draft)

    def _call(
        self, request: SessionStepRequest, n_draft: int, guard: GuardRecord | None
    ) -> list[TopKArrays]:
        assert self.session_id is not None
        kw = self._kw() if guard is None else {**self._kw(), "guard": guard}
        reply = self.client.step(self.session_id, request, **kw)
        if len(reply.positions) != n_draft + 1:
            raise CloudError(
                f"cloud returned {len(reply.positions)} positions for a draft of {n_draft}"
            )
        return [self._check(p) for p in reply.positions]

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
        self.positions, self.draft = [], []

    def close(self) -> None:
        if self.session_id is None:
            return
        if self.failure is not None and (self.failure.status is None or self.failure.status == 404):
            return  # unreachable or already gone: idle expiry cleans up
        try:
            self.client.close_session(self.session_id, **self._kw())
        except CloudError:
            pass


class _Edge:
    """The small model's context: prompt + generated + (drafted, not yet decided)."""

    def __init__(self, model: Any, n_prompt: int, first: np.ndarray) -> None:
        self.model = model
        self.n_prompt = n_prompt
        self.generated = 0
        self.extra: list[int] = []  # drafted tokens after the generated ones
        self.extra_lp: list[float] = []  # the small model's log-prob of each of them
        self.logprobs: list[np.ndarray] = [first]  # [i]: after generated + extra[:i]
        self.evals = 0  # tokens evaluated after the prompt (drafts included)

    def room(self) -> int:
        return self.model.n_ctx - self.model.n_tokens - 1

    def push_draft(self, token: int) -> None:
        self.extra_lp.append(float(self.logprobs[-1][token]))
        self.logprobs.append(self.model.append([token]))
        self.evals += 1
        self.extra.append(token)

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
        else:
            self.drop_drafts()
            self.logprobs = [self.model.append([token])]
            self.evals += 1
        self.generated += 1


def _private_tokens(prompt: Any) -> tuple[list[int], str | None, int]:
    if hasattr(prompt, "tokens"):
        return list(prompt.tokens), getattr(prompt, "prefix_key", None), prompt.prefix_len
    return list(prompt), None, 0


def _open_request(public_prompt: str | Sequence[int], options: LogitsOptions):
    if isinstance(public_prompt, str):
        text = public_prompt[: limits.MAX_PROMPT_CHARS]
        return SessionOpenRequest(prompt=text, system=options.public_system, top_k=options.top_k)
    return SessionOpenRequest(prompt_token_ids=list(public_prompt), top_k=options.top_k)


def run_logits(
    small_model: Any,
    private_prompt_tokens: Sequence[int] | Any,
    public_prompt: str | Sequence[int],
    cloud_client: Any,
    options: LogitsOptions,
    user_id: str,
    usage: CloudUsage,
    on_token: TokenCallback | None = None,
    *,
    guard: Any = None,
    mode: str = "logits",
    rule: FusionRule | None = None,
    matcher: Any = None,
) -> LogitsResult:
    """Generate an answer in logits mode; never raises for cloud trouble (degrades).

    `private_prompt_tokens` is a token list or a `PrivatePrompt` (its cached prefix is
    reused). `public_prompt` is text (rendered by the cloud's template, with
    `options.public_system`) or token ids. `cloud_client` may be None: local only.
    `rule` overrides `options.fusion` (a preloaded gate, say). `matcher` (the user's
    `TermMatcher`) turns on prefix redaction unless `options.prefix_redaction` is off.
    """
    started = time.perf_counter()
    rule = rule or options.rule()
    params = SamplingParams(options.temperature, options.top_p)
    uniforms = UniformStream(options.seed)
    tokens, prefix_key, prefix_len = _private_tokens(private_prompt_tokens)
    cloud = _CloudSide(cloud_client, user_id, usage, mode)
    # Everything the cloud learns of the answer goes through the view (prefix_view.py).
    view = make_view(matcher if options.prefix_redaction else None, small_model)
    held_back = 0
    calls0, up0, down0, wait0 = usage.calls, usage.bytes_up, usage.bytes_down, usage.wait_s
    generated: list[int] = []
    finish: Literal["stop", "length"] = "length"
    collaborated = drafted = accepted = 0
    edge_k = options.edge_k or options.top_k

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogenesis-cloud")
    pending: Future | None = None
    edge: _Edge | None = None
    with small_model.lock:
        timer0 = small_model.timer.seconds
        try:
            first = small_model.start(tokens, prefix_key=prefix_key, prefix_len=prefix_len)
            edge = _Edge(small_model, len(tokens), first)
            if cloud_client is not None:
                try:
                    cloud.open(_open_request(public_prompt, options), len(first), guard)
                except ValidationError as exc:
                    cloud.fail(CloudError(f"public prompt rejected before sending: {exc}"))
                except CloudError as exc:
                    cloud.fail(exc)
            while len(generated) < options.max_tokens:
                s = len(generated)
                dist = None
                if cloud.alive and options.schedule.should_call(s) and not view.in_sync:
                    held_back += 1  # the cloud has not seen the whole prefix: edge alone
                elif cloud.alive and options.schedule.should_call(s):
                    dist = cloud.lookup(view.released)
                    if dist is None:
                        draft = _draft(edge, params, uniforms, s, options, small_model)
                        sent, record = _through_view(view, draft, cloud.known, guard)
                        pending = executor.submit(cloud.step, list(view.released), sent, record)
                        try:
                            if options.lookahead:
                                _draft_while_waiting(
                                    pending, edge, params, uniforms, s, options, small_model
                                )
                            pending.result()
                            drafted += len(sent)
                            dist = cloud.lookup(view.released)
                        except CloudError as exc:
                            cloud.fail(exc)
                        pending = None
                if cloud.alive and dist is not None:
                    fused = fuse(rule, edge.logprobs[0], dist, edge_k=edge_k)
                    token = pick(fused.logprobs, params, uniforms.at(s), fused.token_ids)
                    collaborated += 1
                else:
                    token = pick(edge.logprobs[0], params, uniforms.at(s))
                if small_model.is_eos(token):
                    finish = "stop"
                    break
                generated.append(token)
                view.feed(token)
                if on_token is not None:
                    on_token(token)
                if len(generated) >= options.max_tokens:
                    break
                if len(tokens) + len(generated) + 1 >= small_model.n_ctx:
                    break  # the small model's context is full
                edge.advance(token)
            edge.drop_drafts()
        finally:
            if pending is not None:  # the device failed mid-call: let the call finish
                with contextlib.suppress(CloudError):
                    pending.result()
            executor.shutdown(wait=False)
            if cloud_client is not None:
                cloud.close()
        small_s = small_model.timer.seconds - timer0

    if cloud.alive:
        accepted = cloud.accepted + cloud.kept(view.released)
    else:
        accepted = cloud.accepted
    degraded = cloud.failure is not None
    reason = f"cloud unavailable, finished on the device: {cloud.failure}" if degraded else None
    return LogitsResult(
        tokens=generated,
        text=small_model.detokenize(generated).decode("utf-8", errors="replace"),
        finish_reason=finish,
        generated_tokens=len(generated),
        collaborated=collaborated,
        cloud_calls=usage.calls - calls0,
        drafted=drafted,
        accepted=accepted,
        small_model_evals=edge.evals if edge is not None else 0,
        bytes_up=usage.bytes_up - up0,
        bytes_down=usage.bytes_down - down0,
        small_model_s=small_s,
        cloud_wait_s=usage.wait_s - wait0,
        wall_s=time.perf_counter() - started,
        degraded=degraded,
        degraded_reason=reason,
        seed=uniforms.seed,
        fusion=rule.name,
        schedule=str(options.schedule),
        draft_tokens=options.draft_tokens,
        prefix_redaction=not isinstance(view, IdentityView),
        redacted_spans=len(view.redactions),
        held_back_steps=held_back,
        prefix_guard_s=view.seconds,
    )


def _through_view(
    view: View, draft: list[int], known: int, guard: Any
) -> tuple[list[int], GuardRecord | None]:
    """The part of an (edge) draft the cloud may score, and the step's ledger record.

    The draft is fed to a copy of the view: only what it releases is sent (tokens held
    back at the draft's end are not), which may include generated tokens held so far.
    """
    ahead = view.fork()
    for token in draft:
        ahead.feed(token)
    sent = ahead.released[len(view.released) :][: limits.MAX_DRAFT_TOKENS]
    if guard is None:
        return sent, None
    policy = guard.policy if isinstance(guard, GuardRecord) else str(guard.get("policy"))
    end = len(view.released) + len(sent)
    return sent, GuardRecord(policy=policy, findings=ahead.records(known, end))


def _draft_one(
    edge: _Edge,
    params: SamplingParams,
    uniforms: UniformStream,
    s: int,
    model: Any,
    min_logprob: float,
) -> bool:
    """Draft the next token after the current drafts.

    False (nothing drafted) at EOS, when the context is full, or when the small model's
    probability of all its drafts so far would fall below the confidence floor: that
    position is then left to the next call (it is scored as the position after the
    draft anyway).
    """
    if edge.room() < 1:
        return False
    lp = edge.logprobs[-1]
    token = pick(lp, params, uniforms.at(s + len(edge.extra)))
    if model.is_eos(token):
        return False
    if sum(edge.extra_lp) + float(lp[token]) < min_logprob:
        return False
    edge.push_draft(token)
    return True


def _min_logprob(options: LogitsOptions) -> float:
    p = options.draft_min_prob
    return math.log(p) if p > 0 else -math.inf


def _draft(
    edge: _Edge,
    params: SamplingParams,
    uniforms: UniformStream,
    s: int,
    options: LogitsOptions,
    model: Any,
) -> list[int]:
    """Draft from the small model's own distribution, with the uniforms of the positions.

    A drafted token at position s + i is exactly what the small model alone would pick
    there, so drafts already in the context (from lookahead) are reused as they are,
    and on local (unscheduled) positions a draft is always kept. Drafting stops after
    `draft_tokens`, or earlier when the small model's probability of the whole draft
    drops below `draft_min_prob` (uncertain tokens are where fusion overrules it).
    """
    n = max(0, min(options.draft_tokens, options.max_tokens - s - 1))
    floor = _min_logprob(options)
    sent, total = 0, 0.0  # lookahead drafts skip the floor: apply it to what is sent
    while sent < min(n, len(edge.extra)) and total + edge.extra_lp[sent] >= floor:
        total += edge.extra_lp[sent]
        sent += 1
    if sent == len(edge.extra):
        while len(edge.extra) < n and _draft_one(edge, params, uniforms, s, model, floor):
            sent += 1
    return edge.extra[:sent]


def _draft_while_waiting(
    pending: Future,
    edge: _Edge,
    params: SamplingParams,
    uniforms: UniformStream,
    s: int,
    options: LogitsOptions,
    model: Any,
) -> None:
    """Lookahead: while the cloud scores a draft, draft on past it (on the device).

    If the whole draft is kept these tokens become the next draft; if not, they are
    rewound like any rejected draft. The answer does not depend on it. The device would
    be idle meanwhile, so the confidence floor does not apply here (only to what is
    sent next).
    """
    cap = min(len(edge.extra) + max(options.draft_tokens, 1), options.max_tokens - s - 1)
    while not pending.done() and len(edge.extra) < cap:
        if not _draft_one(edge, params, uniforms, s, model, -math.inf):
            break
