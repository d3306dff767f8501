"""One completion, from the app's task to the final text, in any mode.

HTTP-free on purpose: the app, the CLI and the benchmarks all run the same path.
Text pieces go to `on_text` as they are decoded; the returned report becomes the
response's `cogenesis` object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge_agent.collab.logits_mode import BLOCKED_TITLE, run_logits_mode
from edge_agent.collab.private import (
    PrivatePrompt,
    TextDecoder,
    cached_prefix,
    start_private,
)
from edge_agent.collab.sampling import SamplingParams, UniformStream, pick
from edge_agent.collab.sketch import fetch_outline
from edge_agent.guard.protocol import Guard
from edge_agent.guard.request import RequestGuard
from edge_agent.job import CompletionJob
from edge_agent.metrics import EdgeMetrics
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.prompt_budget import BudgetLimits, BudgetReport, PromptTooLong, assemble
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
    # Sketch mode prefills the private prefix while the outline is on its way; the
    # sketch bench switches it off to time the sequential path in the same run.
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

        def emit(piece: str) -> bool:
            """Pass text on; True when the answer must end here."""
            return text.feed(piece) or cancel.is_set()

        outline: list[str] | None = None
        warm_s = 0.0
        if job.mode == "cogenesis-sketch":
            # The two halves overlap: the outline request goes out on a thread while
            # the small model prefills the user's private prefix (cached for the fill).
            with ThreadPoolExecutor(1, thread_name_prefix="cogenesis-outline") as outbound:
                pending = outbound.submit(
                    fetch_outline,
                    self.cloud,
                    guard,
                    job.task,
                    usage=usage,
                    max_points=job.sketch_points,
                    max_tokens=self.settings.sketch_max_tokens,
                )
                warm_s = self._warm_private_prefix(job) if self.overlap_sketch else 0.0
                result = pending.result()
            outline = result.private_points
            report.sketch_points = result.points
            report.guard = result.guard
            if result.degraded:
                report.degrade(result.reason)
        produced = 0
        if not cancel.is_set():
            with self.pool.acquire() as slm:
                model_seconds = slm.timer.seconds
                cached_before = slm.timer.cached_tokens
                prompt, report.budget = self.private_prompt(slm, job, outline, report)
                if job.mode == "cogenesis-logits":
                    produced = self._run_logits(slm, job, prompt, guard, usage, emit, report)
                else:
                    produced = self.run_local(slm, job, prompt, emit)
                report.prompt_tokens = len(prompt.tokens)
                report.completion_tokens = produced
                report.prefix_cached_tokens = slm.timer.cached_tokens - cached_before
                report.small_model_s = round(slm.timer.seconds - model_seconds + warm_s, 4)
        text.flush()
        stopped = text.stopped or produced < job.max_tokens
        report.finish_reason = "stop" if stopped else "length"
        report.cloud_calls = usage.calls
        report.bytes_up = usage.bytes_up
        report.bytes_down = usage.bytes_down
        report.cloud_wait_s = round(usage.wait_s, 4)
        report.total_s = round(time.perf_counter() - started, 4)
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
        reserve: int = 0,
    ) -> tuple[PrivatePrompt, BudgetReport]:
        """The job's private prompt within the small model's budget.

        Raises ``PromptTooLong`` when the request's own text cannot fit; an outline that
        does not fit is left out instead (the report says so).
        """
        ranked = self.histories.get(job.ctx.cache_key, job.ctx.history).rank(
            job.task, job.ctx.profile_text()
        )
        budget = slm.n_ctx - job.max_tokens - 1 - reserve  # generating needs one position

        def build(points: list[str] | None):
            return assemble(
                slm,
                job.ctx,
                job.conversation,
                budget=budget,
                ranked=ranked,
                outline=points,
                limits=self.limits,
            )

        try:
            built = build(outline)
        except PromptTooLong:
            if not outline:
                raise
            built = build(None)
            if report is not None:
                report.degrade("the outline did not fit the small model's context; left out")
        return cached_prefix(slm, job.ctx, built), built.report

    def check_fits(self, job: CompletionJob) -> None:
        """Raise ``PromptTooLong`` now, before anything leaves, if the job cannot fit
        (in sketch mode with room for the outline that joins the prompt later)."""
        reserve = 0
        if job.mode == "cogenesis-sketch":
            reserve = self.settings.sketch_max_tokens + OUTLINE_TOKENS_PER_POINT * job.sketch_points
        self.private_prompt(self.pool.primary, job, reserve=reserve)

    def _warm_private_prefix(self, job: CompletionJob) -> float:
        """Prefill (or restore) the private prefix the fill will start from; the
        small model's seconds. The prefix does not depend on the outline."""
        with self.pool.acquire() as slm:
            seconds = slm.timer.seconds
            prompt, _budget = self.private_prompt(slm, job)
            if prompt.prefix_key is not None:
                prefix = prompt.tokens[: prompt.prefix_len]
                slm.start(prefix, prefix_key=prompt.prefix_key, prefix_len=len(prefix))
            return slm.timer.seconds - seconds

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


class VocabularyMismatch(RuntimeError):
    pass


def private_texts(job: CompletionJob) -> list[str]:
    """What of the conversation must not leave: the system messages, the earlier turns,
    and the task beyond its title (the title is what sketch and logits mode send)."""
    task = job.task
    body = task[len(task_title(task)) :].lstrip(": ")
    return [*job.conversation.private_texts(), body]
