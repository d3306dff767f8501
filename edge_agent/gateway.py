"""One completion, from the app's task to the final text, in any mode.

HTTP-free on purpose: the app, the CLI and the benchmarks all run the same path.
Text pieces go to `on_text` as they are decoded; the returned report becomes the
response's `cogenesis` object.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge_agent.collab.logits_mode import BLOCKED_TITLE, run_logits_mode
from edge_agent.collab.outline_prefill import OutlinePrefill
from edge_agent.collab.private import (
    PrivatePrompt,
    TextDecoder,
    cached_prefix,
    start_private,
)
from edge_agent.collab.sampling import SamplingParams, UniformStream, pick
from edge_agent.collab.sketch import STOPPED, OutlineResult, fetch_outline, stream_outline
from edge_agent.guard.protocol import Guard
from edge_agent.guard.request import RequestGuard
from edge_agent.job import CompletionJob
from edge_agent.metrics import EdgeMetrics
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.prompt_budget import (
    BudgetedPrompt,
    BudgetLimits,
    BudgetReport,
    assemble,
    with_outline,
)
from edge_agent.prompts import task_title
from edge_agent.report import CompletionReport, LogitsReport
from edge_agent.retrieval import HistoryIndexes
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.stop_text import StopText

TextCallback = Callable[[str], None]
# Room kept per outline point for the numbering and line breaks around its text.
OUTLINE_TOKENS_PER_POINT = 8


def make_picker(temperature: float, top_p: float, seed: int | None) -> Callable[[Any], int]:
    """Greedy or seeded sampling, one uniform per output position (see sampling.py)."""
    params = SamplingParams(temperature=temperature, top_p=top_p)
    uniforms = UniformStream(seed)
    position = 0

    def choose(logprobs: Any) -> int:
        nonlocal position
        token = pick(logprobs, params, uniforms.at(position))
        position += 1
        return token

    return choose


class Gateway:
    # Sketch mode streams the outline and evaluates the private prompt as it arrives;
    # the sketch bench switches it off to time the sequential path in the same run.
    overlap_sketch: bool = True
    # The cloud lists the "propose" capability (services sets it from /v1/info): logits
    # rounds may then be drafted by the cloud (cogenesis.drafter).
    cloud_can_propose: bool = False

    def __init__(
        self,
        settings: EdgeSettings,
        pool: SmallModelPool,
        cloud: CloudClient,
        guard: Guard,
        *,
        metrics: EdgeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cloud = cloud
        self.guard = guard
        self.metrics = metrics
        self.limits = BudgetLimits(
            field_chars=settings.field_chars,
            writing_chars=settings.history_chars,
            writings=settings.history_items,
        )
        self.histories = HistoryIndexes()

    def execute(
        self,
        job: CompletionJob,
        on_text: TextCallback,
        cancel: threading.Event | None = None,
    ) -> CompletionReport:
        """Run one completion. ``cancel`` set (the client went away) ends it within a
        token: the worker is freed and a logits session closed."""
        started = time.perf_counter()
        cancel = cancel or threading.Event()
        usage = CloudUsage()
        report = CompletionReport(mode=job.mode, guard_policy=job.guard_policy)
        guard = RequestGuard.of(self.guard, job.ctx, job.guard_policy, private_texts(job))
        text = StopText(job.stop, on_text)

        first_text_at: float | None = None

        def emit(piece: str) -> bool:
            """Pass text on; True when the answer must end here."""
            nonlocal first_text_at
            if piece and first_text_at is None:
                first_text_at = time.perf_counter()
            return text.feed(piece) or cancel.is_set()

        outline: list[str] | None = None
        outline_at: float | None = None
        prefill: OutlinePrefill | None = None
        if job.mode == "cogenesis-sketch":
            if self.overlap_sketch:
                result, prefill = self._outline_while_prefilling(job, guard, usage, cancel)
            else:  # the sequential path: the whole outline, then the whole prefill
                result = fetch_outline(
                    self.cloud,
                    guard,
                    job.task,
                    usage=usage,
                    max_points=job.sketch_points,
                    max_tokens=self.settings.sketch_max_tokens,
                )
            outline_at = time.perf_counter()
            outline = result.private_points
            report.sketch_points = result.points
            report.guard = result.guard
            if result.degraded:
                report.degrade(result.reason)
        produced = 0
        if not cancel.is_set():
            # Built before a model is taken (any model tokenizes alike), so that the
            # pool can lend the context that holds most of it already.
            base = prefill.outline_free if prefill else None
            prompt, report.budget = self.private_prompt(
                self.pool.primary, job, outline, report, base=base
            )
            prefer = prefill.model if prefill else None
            with self.pool.acquire(prefer=prefer, tokens=prompt.tokens) as slm:
                model_seconds = slm.timer.seconds
                cached_before = slm.timer.cached_tokens
                if job.mode == "cogenesis-logits":
                    produced = self._run_logits(slm, job, prompt, guard, usage, emit, report)
                else:
                    produced = self.run_local(slm, job, prompt, emit)
                report.prompt_tokens = len(prompt.tokens)
                report.completion_tokens = produced
                report.prefix_cached_tokens = slm.timer.cached_tokens - cached_before
                warm_s = prefill.seconds if prefill else 0.0
                report.small_model_s = round(slm.timer.seconds - model_seconds + warm_s, 4)
        text.flush()
        stopped = text.stopped or produced < job.max_tokens
        report.finish_reason = "stop" if stopped else "length"
        report.cloud_calls = usage.calls
        report.bytes_up = usage.bytes_up
        report.bytes_down = usage.bytes_down
        report.cloud_wait_s = round(usage.wait_s, 4)
        report.total_s = round(time.perf_counter() - started, 4)
        if outline_at is not None and first_text_at is not None:
            report.outline_to_first_token_s = round(first_text_at - outline_at, 4)
        if self.metrics is not None:
            self.metrics.answered(
                job.mode,
                degraded=report.degraded,
                degraded_reason=report.degraded_reason,
                guard_counts=(report.guard or {}).get("counts"),
                session_reopens=report.logits.session_reopens if report.logits else 0,
            )
        return report

    def private_prompt(
        self,
        slm: SmallModel,
        job: CompletionJob,
        outline: list[str] | None = None,
        report: CompletionReport | None = None,
        *,
        base: BudgetedPrompt | None = None,
    ) -> tuple[PrivatePrompt, BudgetReport]:
        """The job's private prompt within the small model's budget.

        In sketch mode the budget's choices are made with room kept for the largest
        outline, so they never depend on the outline (which is then added at the end).
        Raises ``PromptTooLong`` when the request's own text cannot fit; an outline that
        does not fit is left out instead (the report says so). ``base``: this job's
        ``outline_free_prompt``, when it was built already.
        """
        budget = self._budget(slm, job)
        built = base or self.outline_free_prompt(slm, job)
        if outline:
            outlined = with_outline(slm, built, outline)
            if len(outlined.tokens) <= budget:
                built = outlined
            elif report is not None:
                report.degrade("the outline did not fit the small model's context; left out")
        # The budget reported is the whole one: the outline's room is part of it.
        return cached_prefix(slm, job.ctx, built), built.report.model_copy(
            update={"budget_tokens": budget}
        )

    def check_fits(self, job: CompletionJob) -> None:
        """Raise ``PromptTooLong`` now, before anything leaves, if the job cannot fit
        (in sketch mode with room for the outline that joins the prompt later)."""
        self.private_prompt(self.pool.primary, job)

    def _budget(self, slm: SmallModel, job: CompletionJob) -> int:
        return slm.n_ctx - job.max_tokens - 1  # generating needs one position

    def _outline_reserve(self, job: CompletionJob) -> int:
        """Tokens kept for the outline in sketch mode: its token budget and numbering."""
        if job.mode != "cogenesis-sketch":
            return 0
        return self.settings.sketch_max_tokens + OUTLINE_TOKENS_PER_POINT * job.sketch_points

    def outline_free_prompt(self, slm: SmallModel, job: CompletionJob) -> BudgetedPrompt:
        """The private prompt without an outline, with room kept for one in sketch mode:
        the part of every prompt of this job that comes before an outline."""
        budget = self._budget(slm, job) - self._outline_reserve(job)
        ranked = self.histories.get(job.ctx.cache_key, job.ctx.history).rank(
            job.task, job.ctx.profile_text()
        )
        return assemble(
            slm,
            job.ctx,
            job.conversation,
            budget=budget,
            ranked=ranked,
            limits=self.limits,
        )

    def _outline_while_prefilling(
        self,
        job: CompletionJob,
        guard: RequestGuard,
        usage: CloudUsage,
        cancel: threading.Event,
    ) -> tuple[OutlineResult, OutlinePrefill]:
        """Stream the outline on a thread; meanwhile evaluate the private prompt up to
        the outline, then each point as it arrives (``OutlinePrefill``).

        ``usage.wait_s`` counts the time spent waiting for points with nothing to do.
        A client that leaves, or an outline not done within the cloud timeout, stops
        the stream (the connection closes) and degrades.
        """
        prefill = OutlinePrefill(self.pool, job.ctx, lambda slm: self.outline_free_prompt(slm, job))
        arrived: queue.SimpleQueue[str | object] = queue.SimpleQueue()
        stop = threading.Event()
        outbound = ThreadPoolExecutor(1, thread_name_prefix="cogenesis-outline")
        pending = outbound.submit(
            stream_outline,
            self.cloud,
            guard,
            job.task,
            usage=usage,
            max_points=job.sketch_points,
            max_tokens=self.settings.sketch_max_tokens,
            on_point=arrived.put,
            stop=stop,
        )
        pending.add_done_callback(lambda _done: arrived.put(_OUTLINE_END))
        deadline = time.monotonic() + self.cloud.timeout_s
        points: list[str] = []
        try:
            prefill.advance(points)
            while True:
                waited = time.perf_counter()
                batch = _take(arrived, POLL_S)
                usage.wait_s += time.perf_counter() - waited
                if _OUTLINE_END in batch:
                    return pending.result(), prefill
                if cancel.is_set():
                    return OutlineResult(degraded=True, reason=STOPPED), prefill
                if time.monotonic() > deadline:
                    reason = (
                        f"cloud timed out: the outline took over {self.cloud.timeout_s:g} s; "
                        "answered on the device without an outline"
                    )
                    return OutlineResult(degraded=True, reason=reason), prefill
                if batch:
                    points += [str(point) for point in batch]
                    prefill.advance(points)
        finally:
            stop.set()
            outbound.shutdown(wait=False)  # a stream still open ends at its next event

    def run_local(
        self,
        slm: SmallModel,
        job: CompletionJob,
        prompt: PrivatePrompt,
        emit: Callable[[str], bool],
    ) -> int:
        """The small model alone; ``emit`` returning True ends the answer there."""
        pick = make_picker(job.temperature, job.top_p, job.seed)
        decoder = TextDecoder(slm)
        produced = 0
        with slm.lock:
            for token in slm.generate(start_private(slm, prompt), job.max_tokens, pick):
                produced += 1
                if emit(decoder.feed(token)):
                    return produced
        emit(decoder.flush())
        return produced

    def _run_logits(
        self,
        slm: SmallModel,
        job: CompletionJob,
        prompt: PrivatePrompt,
        guard: RequestGuard,
        usage: CloudUsage,
        emit: Callable[[str], bool],
        report: CompletionReport,
    ) -> int:
        outcome = run_logits_mode(
            slm,
            job,
            prompt,
            guard=guard,
            cloud=self.cloud,
            usage=usage,
            on_text=emit,
            can_propose=self.cloud_can_propose,
        )
        report.guard = outcome.guard
        if outcome.result is None:
            report.degrade(BLOCKED_TITLE)
            return self.run_local(slm, job, prompt, emit)
        report.logits = LogitsReport.of(outcome.result)
        if outcome.result.degraded:
            report.degrade(outcome.result.degraded_reason)
        return outcome.result.generated_tokens

    def check_vocabulary(self, model_id: str, fingerprint: str) -> None:
        """Refuse logits mode against a cloud whose token ids mean other bytes."""
        with self.pool.acquire() as slm:
            ours, our_id = slm.tokenizer_fingerprint, slm.model_id
        if fingerprint != ours:
            raise VocabularyMismatch(
                f"logits mode needs one vocabulary on both ends, but the edge model "
                f"{our_id!r} ({ours}) and the cloud model {model_id!r} ({fingerprint}) "
                "tokenize differently; use sketch mode or matching models"
            )


_OUTLINE_END = object()
POLL_S = 0.05  # how often a wait for the outline looks at the client and the deadline


def _take(arrived: queue.SimpleQueue, timeout_s: float) -> list:
    """Whatever has arrived, waiting up to ``timeout_s`` for the first item."""
    try:
        batch = [arrived.get(timeout=timeout_s)]
    except queue.Empty:
        return []
    while not arrived.empty():
        batch.append(arrived.get_nowait())
    return batch


class VocabularyMismatch(RuntimeError):
    pass


def private_texts(job: CompletionJob) -> list[str]:
    """What of the conversation must not leave: the system messages, the earlier turns,
    and the task beyond its title (the title is what sketch and logits mode send)."""
    task = job.task
    body = task[len(task_title(task)) :].lstrip(": ")
    return [*job.conversation.private_texts(), body]
