"""Teacher forcing on both ends: every side's distribution before each reference token.

For a task:
- the small model reads the private prompt (with context) and then the reference
  answer, giving its log-probs at every answer position;
- a cloud session is opened on the public prompt (no context) and the reference tokens
  are sent as drafts (chunks of `limits.MAX_DRAFT_TOKENS`, each accepted by the next
  step), giving the cloud's top-k at every answer position;
- each fixed rule's log-prob of the reference token is computed over the full
  vocabulary (tokens outside the cloud's top-k get the remaining-mass rule, see
  edge_agent/collab/fusion.py), and the gate's features are recorded.

The cloud is reached through the edge's outbound client, so every byte sent is in the
ledger like any other cloud call.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from edge_agent.collab.features import N_FEATURES, gate_features
from edge_agent.collab.fusion import TopKArrays, as_topk, fused_logprob, side_logprobs
from edge_agent.outbound import CloudError, CloudUsage
from research.dataset import BuildPrompts, PromptModel, load_tasks, task_prompts
from research.rules import FIXED_RULES
from shared_protocol import (
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    limits,
)

DEFAULT_TOP_K = 10  # what logits mode asks for by default; the gate's features depend on k
MAX_REFERENCE_TOKENS = 512


class ScoringModel(PromptModel, Protocol):
    """What teacher forcing needs of the small model (edge_agent.slm.SmallModel)."""

    lock: AbstractContextManager[Any]  # held while the model's context is in use
    n_ctx: int

    def is_eos(self, token_id: int) -> bool: ...

    def start(self, tokens: Sequence[int]) -> np.ndarray: ...

    def append_all(self, tokens: Sequence[int], keep_last: int | None = None) -> np.ndarray: ...


class CloudSessions(Protocol):
    """The session calls of the edge's outbound client (edge_agent.outbound.CloudClient)."""

    def open_session(
        self, req: SessionOpenRequest, *, user_id: str, mode: str, usage: CloudUsage
    ) -> SessionOpenResponse: ...

    def step(
        self,
        session_id: str,
        req: SessionStepRequest,
        *,
        user_id: str,
        mode: str,
        usage: CloudUsage,
    ) -> SessionStepResponse: ...

    def close_session(
        self, session_id: str, *, user_id: str, mode: str, usage: CloudUsage
    ) -> None: ...


@dataclass
class TaskLogits:
    """Teacher-forced facts of one task, one row per reference token."""

    tid: str
    targets: np.ndarray  # (L,) reference token ids
    edge_lp: np.ndarray  # (L,) small model's log-prob of the target
    cloud_lp: np.ndarray  # (L,) cloud's log-prob of the target (remaining-mass rule)
    features: np.ndarray  # (L, 12) gate features
    rule_lp: dict[str, np.ndarray]  # fixed rule name -> (L,) fused log-prob of the target


def _end_token(small_model: ScoringModel) -> int | None:
    ids = small_model.tokenize("<|im_end|>")
    return ids[0] if len(ids) == 1 and small_model.is_eos(ids[0]) else None


def reference_tokens(small_model: ScoringModel, reference: str, max_tokens: int) -> list[int]:
    """The reference answer's tokens, ending with the end-of-turn token."""
    ids = small_model.tokenize(reference.strip())[: max_tokens - 1]
    end = _end_token(small_model)
    return ids + ([end] if end is not None else [])


def cloud_positions(
    cloud_client: CloudSessions,
    public_prompt: str | Sequence[int],
    targets: Sequence[int],
    vocab_size: int,
    *,
    top_k: int,
    user_id: str,
    usage: CloudUsage,
) -> list[TopKArrays]:
    """The cloud's top-k before each target token (position i predicts targets[i])."""
    if isinstance(public_prompt, str):
        request = SessionOpenRequest(prompt=public_prompt, top_k=top_k)
    else:
        request = SessionOpenRequest(prompt_token_ids=list(public_prompt), top_k=top_k)
    kw = {"user_id": user_id, "mode": "eval", "usage": usage}
    opened = cloud_client.open_session(request, **kw)
    positions = [as_topk(opened.next, vocab_size)]
    try:
        accept = 0
        prefix = list(targets[:-1])
        for i in range(0, len(prefix), limits.MAX_DRAFT_TOKENS):
            draft = prefix[i : i + limits.MAX_DRAFT_TOKENS]
            reply = cloud_client.step(
                opened.session_id, SessionStepRequest(accept=accept, draft=draft), **kw
            )
            if len(reply.positions) != len(draft) + 1:
                raise CloudError("the cloud returned the wrong number of positions")
            positions += [as_topk(p, vocab_size) for p in reply.positions[1:]]
            accept = len(draft)
    finally:
        try:
            cloud_client.close_session(opened.session_id, **kw)
        except CloudError:
            pass
    return positions


def extract_task(
    small_model: ScoringModel,
    cloud_client: CloudSessions,
    private_tokens: Sequence[int],
    public_prompt: str | Sequence[int],
    targets: Sequence[int],
    *,
    tid: str = "",
    top_k: int = DEFAULT_TOP_K,
    user_id: str = "eval",
    usage: CloudUsage | None = None,
) -> TaskLogits:
    usage = usage or CloudUsage()
    targets = list(targets)
    with small_model.lock:
        first = small_model.start(list(private_tokens))
        rows = [first]
        if len(targets) > 1:
            rows += list(small_model.append_all(targets[:-1], keep_last=None))
    vocab = len(first)
    cloud = cloud_positions(
        cloud_client, public_prompt, targets, vocab, top_k=top_k, user_id=user_id, usage=usage
    )
    edge_lp = np.empty(len(targets))
    cloud_lp = np.empty(len(targets))
    features = np.empty((len(targets), N_FEATURES))
    rule_lp = {rule.name: np.empty(len(targets)) for rule in FIXED_RULES}
    for i, (target, row, top) in enumerate(zip(targets, rows, cloud, strict=True)):
        ids = np.array([target])
        edge_lp[i] = float(row[target])
        cloud_lp[i] = float(side_logprobs(top, ids)[0])
        features[i] = gate_features(row, top)
        for rule in FIXED_RULES:
            rule_lp[rule.name][i] = float(fused_logprob(rule, row, top, ids)[0])
    return TaskLogits(tid, np.array(targets), edge_lp, cloud_lp, features, rule_lp)


def collect(
    dataset_path: str | Path,
    small_model: ScoringModel,
    cloud_client: CloudSessions,
    build_prompts: BuildPrompts | None = None,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    top_k: int = DEFAULT_TOP_K,
    max_reference_tokens: int = MAX_REFERENCE_TOKENS,
    desc: str = "teacher forcing",
) -> tuple[list[TaskLogits], list[dict[str, str]]]:
    """Extract every task; tasks that fail (cloud error, too long) are skipped and listed.

    A malformed dataset raises `DatasetFormatError` before anything is sent.
    """
    tasks = load_tasks(dataset_path, max_tasks)
    build = build_prompts or task_prompts(small_model)
    out: list[TaskLogits] = []
    skipped: list[dict[str, str]] = []
    usage = CloudUsage()
    for task in tqdm(tasks, desc=desc, disable=not progress, unit="task"):
        try:
            if not task.reference:
                raise ValueError("the item has no reference answer (assistant turn)")
            private, public = build(task)
            room = small_model.n_ctx - len(private) - 1
            targets = reference_tokens(small_model, task.reference, min(max_reference_tokens, room))
            if len(targets) < 2:
                raise ValueError("the reference answer is empty or the prompt fills the context")
            out.append(
                extract_task(
                    small_model,
                    cloud_client,
                    private,
                    public,
                    targets,
                    tid=task.tid,
                    top_k=top_k,
                    usage=usage,
                )
            )
        except (CloudError, ValueError) as exc:
            skipped.append({"tid": task.tid, "reason": f"{type(exc).__name__}: {exc}"})
    return out, skipped


def stack_rows(tasks: Sequence[TaskLogits]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gate training rows of many tasks: features (n, 12), targets (n, 2), task index (n,)."""
    x = np.concatenate([t.features for t in tasks])
    y = np.stack(
        [np.concatenate([t.edge_lp for t in tasks]), np.concatenate([t.cloud_lp for t in tasks])],
        axis=1,
    )
    groups = np.concatenate([np.full(len(t.targets), i) for i, t in enumerate(tasks)])
    return x, y, groups
