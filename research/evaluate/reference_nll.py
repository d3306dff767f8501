"""Teacher-forced NLL per token of a task's reference answer, under what each mode sees.

The extraction is `eval nll`'s (research.teacher_forcing): the small model reads the private
prompt, a cloud session the public prompt (the task's title), and the reference is
scored token by token. Per mode:

- ``local``: the small model alone (the "edge" rule);
- ``cogenesis-logits``: the fusion rule the edge is set to (the "mean" rule unless it is
  set to another fixed rule);
- ``cloud-no-context``: the cloud alone on the public prompt (the "cloud" rule);
- ``cogenesis-sketch``: the small model with the outline the sketch answer received;
- ``cloud-with-context``: the cloud reading the private prompt (only when that mode runs).

These cloud sessions are evaluation traffic, not a mode's requests: they go through a
separate client whose ledger is discarded, so they never count as leakage or cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_agent.collab.fusion import side_logprobs
from edge_agent.collab.private import PrivatePrompt, start_private
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.prompts import private_messages
from research.dataset import task_of, task_prompts
from research.rules import FIXED_RULE_NAMES
from research.teacher_forcing import cloud_positions, extract_task, reference_tokens


class DiscardLedger:
    """The reference-NLL sessions are not a mode's traffic: nothing is recorded."""

    def begin(self, **_: Any) -> int:
        return 0

    def finish(self, *_: Any, **__: Any) -> None:
        pass


def evaluation_client(cloud_url: str, token: str | None) -> CloudClient:
    return CloudClient(cloud_url, token=token, ledger=DiscardLedger(), timeout_s=600)


def task_nll(
    services: Any,
    client: CloudClient,
    record: dict,
    ctx: Any,
    modes: Sequence[str],
    outline: list[str] | None,
    *,
    max_tokens: int,
) -> dict[str, float]:
    """Mean NLL per reference token, per mode in ``modes``."""
    settings = services.settings
    rule = settings.fusion if settings.fusion in FIXED_RULE_NAMES else "mean"
    task = task_of(0, record)
    if task is None or not task.reference:
        raise ValueError("the task has no reference answer")
    out: dict[str, float] = {}
    with services.pool.acquire() as slm:
        private, public = task_prompts(slm)(task)
        room = slm.n_ctx - len(private) - 1
        targets = reference_tokens(slm, task.reference, min(max_tokens, room))
        if len(targets) < 2:
            raise ValueError("the reference is empty or the private prompt fills the context")
        facts = extract_task(
            slm, client, private, public, targets, top_k=settings.top_k, user_id="eval-nll"
        )
        nll = {
            "local": -facts.edge_lp.mean(),
            "cogenesis-logits": -facts.rule_lp[rule].mean(),
            "cloud-no-context": -facts.cloud_lp.mean(),
        }
        if "cogenesis-sketch" in modes:
            nll["cogenesis-sketch"] = _edge_nll(slm, services, ctx, record, outline, targets)
        if "cloud-with-context" in modes:
            rows = cloud_positions(
                client,
                private,
                targets,
                slm.vocab_size,
                top_k=settings.top_k,
                user_id="eval-nll",
                usage=CloudUsage(),
            )
            lp = [
                side_logprobs(top, np.array([t]))[0] for top, t in zip(rows, targets, strict=True)
            ]
            nll["cloud-with-context"] = -float(np.mean(lp))
    for mode in modes:
        if mode in nll:
            out[mode] = float(nll[mode])
    return out


def _edge_nll(slm, services, ctx, record: dict, outline, targets: list[int]) -> float:
    task = str(record["conversations"][0]["value"])
    # The dataset's single-turn prompt (as `eval nll` builds it), not a request's budget.
    text = slm.render_chat(private_messages(ctx, task, outline or None))
    prompt = PrivatePrompt.uncached(slm.tokenize(text))
    with slm.lock:
        first = start_private(slm, prompt)
        rest = slm.append_all(targets[:-1], keep_last=None) if len(targets) > 1 else []
    rows = [first, *list(rest)]
    return float(-np.mean([rows[i][t] for i, t in enumerate(targets)]))
