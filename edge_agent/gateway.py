"""One completion, from the app's task to the final text, in any mode.

HTTP-free on purpose: the app, the CLI and the benchmarks all run the same path.
Text pieces go to `on_text` as they are decoded; the returned report becomes the
response's `cogenesis` object.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge_agent.collab.logits_mode import BLOCKED_TITLE, run_logits_mode
from edge_agent.collab.private import (
    PrivatePrompt,
    TextDecoder,
    build_private_prompt,
    start_private,
)
from edge_agent.collab.sampling import SamplingParams, UniformStream, pick
from edge_agent.collab.sketch import fetch_outline
from edge_agent.guard.protocol import Guard
from edge_agent.job import CompletionJob
from edge_agent.metrics import EdgeMetrics
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.prompts import PromptLimits
from edge_agent.report import CompletionReport, LogitsReport
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool

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
        self.limits = PromptLimits(settings.history_items, settings.history_chars)

    def fit(self, job: CompletionJob, *, max_tokens_given: bool) -> CompletionJob:
        """The job, checked to fit the small model's context before anything leaves.

        Raises `PromptTooLong` when the private prompt (plus room for a sketch's outline)
        leaves no room to answer, or when a `max_tokens` the request gave does not fit
        (OpenAI answers that with a 400 too); a server default is shortened instead.
        """
        with self.pool.acquire() as slm:
            prompt_tokens = len(
                build_private_prompt(slm, job.ctx, job.task, None, self.limits).tokens
            )
            n_ctx = slm.n_ctx
        reserved = 0
        if job.mode == "cogenesis-sketch":  # the outline joins the prompt later
            reserved = (
                self.settings.sketch_max_tokens + OUTLINE_TOKENS_PER_POINT * job.sketch_points
            )
        room = n_ctx - prompt_tokens - reserved
        if room < 1 or (max_tokens_given and job.max_tokens > room):
            raise PromptTooLong(prompt_tokens + reserved, job.max_tokens, n_ctx)
        if job.max_tokens <= room:
            return job
        logits = job.logits and dataclasses.replace(job.logits, max_tokens=room)
        return dataclasses.replace(job, max_tokens=room, logits=logits)

    def execute(self, job: CompletionJob, on_text: TextCallback) -> CompletionReport:
        started = time.perf_counter()
        usage = CloudUsage()
        report = CompletionReport(mode=job.mode, guard_policy=job.guard_policy)
        outline: list[str] | None = None
        warm_s = 0.0
        if job.mode == "cogenesis-sketch":
            # The two halves overlap: the outline request goes out on a thread while
            # the small model prefills the user's private prefix (cached for the fill).
            with ThreadPoolExecutor(1, thread_name_prefix="cogenesis-outline") as outbound:
                pending = outbound.submit(
                    fetch_outline,
                    self.cloud,
                    self.guard,
                    job.ctx,
                    job.task,
                    policy=job.guard_policy,
                    usage=usage,
                    max_points=job.sketch_points,
                    max_tokens=self.settings.sketch_max_tokens,
                )
                warm_s = self._warm_private_prefix(job) if self.overlap_sketch else 0.0
                result = pending.result()
            outline = result.points
            report.sketch_points = result.points
            report.guard = result.guard
            if result.degraded:
                report.degrade(result.reason)
        with self.pool.acquire() as slm:
            model_seconds = slm.timer.seconds
            cached_before = slm.timer.cached_tokens
            prompt = build_private_prompt(slm, job.ctx, job.task, outline, self.limits)
            if job.mode == "cogenesis-logits":
                produced = self._run_logits(slm, job, prompt, usage, on_text, report)
            else:
                produced = self.run_local(slm, job, prompt, on_text)
            report.prompt_tokens = len(prompt.tokens)
            report.completion_tokens = produced
            report.prefix_cached_tokens = slm.timer.cached_tokens - cached_before
            report.small_model_s = round(slm.timer.seconds - model_seconds + warm_s, 4)
        report.finish_reason = "length" if produced >= job.max_tokens else "stop"
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

    def _warm_private_prefix(self, job: CompletionJob) -> float:
        """Prefill (or restore) the private prefix the fill will start from; the
        small model's seconds. The prefix does not depend on the outline."""
        with self.pool.acquire() as slm:
            seconds = slm.timer.seconds
            prompt = build_private_prompt(slm, job.ctx, job.task, None, self.limits)
            if prompt.prefix_key is not None:
                prefix = prompt.tokens[: prompt.prefix_len]
                slm.start(prefix, prefix_key=prompt.prefix_key, prefix_len=len(prefix))
            return slm.timer.seconds - seconds

    def run_local(
        self, slm: SmallModel, job: CompletionJob, prompt: PrivatePrompt, on_text: TextCallback
    ) -> int:
        pick = make_picker(job.temperature, job.top_p, job.seed)
        decoder = TextDecoder(slm)
        produced = 0
        for token in slm.generate(start_private(slm, prompt), job.max_tokens, pick):
            produced += 1
            piece = decoder.feed(token)
            if piece:
                on_text(piece)
        tail = decoder.flush()
        if tail:
            on_text(tail)
        return produced

    def _run_logits(
        self,
        slm: SmallModel,
        job: CompletionJob,
        prompt: PrivatePrompt,
        usage: CloudUsage,
        on_text: TextCallback,
        report: CompletionReport,
    ) -> int:
        outcome = run_logits_mode(
            slm, job, prompt, guard=self.guard, cloud=self.cloud, usage=usage, on_text=on_text
        )
        report.guard = outcome.guard
        if outcome.result is None:
            report.degrade(BLOCKED_TITLE)
            return self.run_local(slm, job, prompt, on_text)
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


class PromptTooLong(ValueError):
    """The private prompt and the answer do not fit the small model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"the small model's context is {n_ctx} tokens, but the private prompt (the "
            f"profile, writing samples and messages) takes {prompt_tokens} and the answer "
            f"up to {max_tokens}; shorten the messages or lower max_tokens (nothing was sent)"
        )
        self.prompt_tokens, self.max_tokens, self.n_ctx = prompt_tokens, max_tokens, n_ctx
