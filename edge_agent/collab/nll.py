"""Teacher-forced NLL of reference answers under each side and each fusion rule.

For every task of a CoGenesis-format dataset:
- the small model reads the private prompt (with context) and then the reference
  answer, giving its log-probs at every answer position;
- a cloud session is opened on the public prompt (no context) and the reference tokens
  are sent as drafts (chunks of `limits.MAX_DRAFT_TOKENS`, each accepted by the next
  step), giving the cloud's top-k at every answer position;
- each fusion rule's log-prob of the reference token is computed over the full
  vocabulary (tokens outside the cloud's top-k get the remaining-mass rule, see
  fusion.py).

The same extraction trains the gate (`train_gate_from_dataset`). In `evaluate_nll` the
gate is scored k-fold by task: it never sees the tasks it is scored on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge_agent.collab.fusion import (
    TopKArrays,
    as_topk,
    fused_logprob,
    logmean,
    make_rule,
    maximum,
    side_logprobs,
)
from edge_agent.collab.gate import N_FEATURES, Gate, gate_features
from edge_agent.outbound import CloudError, CloudUsage
from shared_protocol import SessionOpenRequest, SessionStepRequest, limits

BuildPrompts = Callable[[dict], tuple[Sequence[int], "str | Sequence[int]"]]

FIXED_RULES = ("edge", "cloud", "mean", "max", "logmean", "weighted(0.25)", "weighted(0.75)")
DEFAULT_TOP_K = 10  # what logits mode asks for by default; the gate's features depend on k
MAX_REFERENCE_TOKENS = 512


@dataclass
class TaskLogits:
    """Teacher-forced facts of one task, one row per reference token."""

    tid: str
    targets: np.ndarray  # (L,) reference token ids
    edge_lp: np.ndarray  # (L,) small model's log-prob of the target
    cloud_lp: np.ndarray  # (L,) cloud's log-prob of the target (remaining-mass rule)
    features: np.ndarray  # (L, 12) gate features
    rule_lp: dict[str, np.ndarray]  # fixed rule -> (L,) fused log-prob of the target


@dataclass
class NllReport:
    dataset: str
    tasks: int
    tokens: int
    top_k: int
    folds: int
    nll: dict[str, float]  # rule -> mean NLL per token (nats)
    ppl: dict[str, float]
    per_task: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    json_path: str | None = None

    def table(self) -> str:
        lines = [
            f"teacher-forced NLL on {self.tasks} tasks, {self.tokens} tokens "
            f"(cloud top-{self.top_k}; gate {self.folds}-fold by task)",
            f"{'rule':<16}{'NLL/token':>12}{'perplexity':>12}",
        ]
        for rule, value in sorted(self.nll.items(), key=lambda kv: kv[1]):
            lines.append(f"{rule:<16}{value:>12.4f}{self.ppl[rule]:>12.2f}")
        return "\n".join(lines)


@dataclass
class GateReport:
    path: str
    tasks: int
    tokens: int
    epochs: int
    train_nll: float
    val_nll: float | None  # on held-out tasks (early stopping split)
    baseline_val_nll: dict[str, float]  # fixed rules on the same held-out tasks
    skipped: list[dict[str, str]] = field(default_factory=list)


# --- prompts for dataset records -------------------------------------------------------


@dataclass
class _RecordContext:
    user_id: str
    name: str
    fields: dict[str, str]
    history: list[tuple[str, str]]
    data_version: int = 0


def record_context(record: dict) -> _RecordContext:
    """A user context from a CoGenesis record (profile lines + writing history)."""
    fields: dict[str, str] = {}
    for line in str(record.get("additional_profile", "")).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    history = [(str(p.get("title", "")), str(p.get("text", ""))) for p in record.get("profile", [])]
    return _RecordContext(
        user_id=str(record.get("tid", "task")),
        name=fields.get("Name", ""),
        fields=fields,
        history=history,
    )


def record_task(record: dict) -> str:
    return str(record["conversations"][0]["value"])


def record_reference(record: dict) -> str:
    return str(record["conversations"][1]["value"])


def dataset_prompts(small_model: Any) -> BuildPrompts:
    """Prompts of a dataset record built with edge_agent.prompts (private and public).

    The public prompt is returned as token ids rendered with the model's own template
    (system + the task's title), identical on both ends since tokenizers match.
    """
    from edge_agent.prompts import private_messages, public_messages

    def build(record: dict) -> tuple[list[int], list[int]]:
        task = record_task(record)
        private = small_model.render_chat(private_messages(record_context(record), task))
        public = small_model.render_chat(public_messages(task))
        return small_model.tokenize(private), small_model.tokenize(public)

    return build


def load_dataset(path: str | Path, max_tasks: int | None = None) -> list[dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: a CoGenesis dataset is a JSON list of tasks")
    return data[:max_tasks] if max_tasks else data


# --- extraction ------------------------------------------------------------------------


def _end_token(small_model: Any) -> int | None:
    ids = small_model.tokenize("<|im_end|>")
    return ids[0] if len(ids) == 1 and small_model.is_eos(ids[0]) else None


def reference_tokens(small_model: Any, record: dict, max_tokens: int) -> list[int]:
    """The reference answer's tokens, ending with the end-of-turn token."""
    ids = small_model.tokenize(record_reference(record).strip())[: max_tokens - 1]
    end = _end_token(small_model)
    return ids + ([end] if end is not None else [])


def cloud_positions(
    cloud_client: Any,
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
    small_model: Any,
    cloud_client: Any,
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
    rules = {name: _fixed_rule(name) for name in FIXED_RULES}
    edge_lp = np.empty(len(targets))
    cloud_lp = np.empty(len(targets))
    features = np.empty((len(targets), N_FEATURES))
    rule_lp = {name: np.empty(len(targets)) for name in FIXED_RULES}
    for i, (target, row, top) in enumerate(zip(targets, rows, cloud, strict=True)):
        ids = np.array([target])
        edge_lp[i] = float(row[target])
        cloud_lp[i] = float(side_logprobs(top, ids)[0])
        features[i] = gate_features(row, top)
        for name, rule in rules.items():
            rule_lp[name][i] = float(fused_logprob(rule, row, top, ids)[0])
    return TaskLogits(tid, np.array(targets), edge_lp, cloud_lp, features, rule_lp)


def _fixed_rule(name: str):
    if name == "max":
        return maximum
    if name == "logmean":
        return logmean
    if name.startswith("weighted("):
        return make_rule("weighted", alpha=float(name[len("weighted(") : -1]))
    return make_rule(name)


def collect(
    dataset_path: str | Path,
    small_model: Any,
    cloud_client: Any,
    build_prompts: BuildPrompts | None = None,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    top_k: int = DEFAULT_TOP_K,
    max_reference_tokens: int = MAX_REFERENCE_TOKENS,
    desc: str = "teacher forcing",
) -> tuple[list[TaskLogits], list[dict[str, str]]]:
    """Extract every task; tasks that fail (cloud error, too long) are skipped and listed."""
    records = load_dataset(dataset_path, max_tasks)
    build = build_prompts or dataset_prompts(small_model)
    out: list[TaskLogits] = []
    skipped: list[dict[str, str]] = []
    usage = CloudUsage()
    for index, record in enumerate(tqdm(records, desc=desc, disable=not progress, unit="task")):
        tid = str(record.get("tid", index))
        try:
            private, public = build(record)
            room = small_model.n_ctx - len(private) - 1
            targets = reference_tokens(small_model, record, min(max_reference_tokens, room))
            if len(targets) < 2:
                raise ValueError("the reference answer is empty or the prompt fills the context")
            out.append(
                extract_task(
                    small_model,
                    cloud_client,
                    private,
                    public,
                    targets,
                    tid=tid,
                    top_k=top_k,
                    usage=usage,
                )
            )
        except (CloudError, ValueError, KeyError, IndexError) as exc:
            skipped.append({"tid": tid, "reason": f"{type(exc).__name__}: {exc}"})
    return out, skipped


# --- evaluation ------------------------------------------------------------------------


def _stack(tasks: Sequence[TaskLogits]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([t.features for t in tasks])
    y = np.stack(
        [np.concatenate([t.edge_lp for t in tasks]), np.concatenate([t.cloud_lp for t in tasks])],
        axis=1,
    )
    groups = np.concatenate([np.full(len(t.targets), i) for i, t in enumerate(tasks)])
    return x, y, groups


def kfold_gate_logprobs(
    tasks: Sequence[TaskLogits], folds: int = 5, seed: int = 0
) -> list[np.ndarray]:
    """Gate log-prob of each task's targets, from a gate trained on the other folds."""
    folds = max(2, min(folds, len(tasks)))
    out: list[np.ndarray | None] = [None] * len(tasks)
    for fold in range(folds):
        held = [i for i in range(len(tasks)) if i % folds == fold]
        train = [tasks[i] for i in range(len(tasks)) if i % folds != fold]
        x, y, groups = _stack(train)
        gate, _ = Gate.train(x, y, groups=groups, seed=seed)
        for i in held:
            t = tasks[i]
            w = np.clip(gate.weight(t.features), 1e-12, 1 - 1e-12)
            out[i] = np.logaddexp(np.log(w) + t.edge_lp, np.log1p(-w) + t.cloud_lp)
    return [o for o in out if o is not None]


def evaluate_nll(
    dataset_path: str | Path,
    small_model: Any,
    cloud_client: Any,
    build_prompts: BuildPrompts | None = None,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    out_path: str | Path | None = None,
    folds: int = 5,
    top_k: int = DEFAULT_TOP_K,
    echo: Callable[[str], Any] | None = print,
) -> NllReport:
    """Mean teacher-forced NLL per token of every rule; prints a table, writes JSON."""
    tasks, skipped = collect(
        dataset_path, small_model, cloud_client, build_prompts, max_tasks, progress, top_k=top_k
    )
    if not tasks:
        raise ValueError(f"no task of {dataset_path} could be evaluated: {skipped[:3]}")
    per_rule = {name: [t.rule_lp[name] for t in tasks] for name in FIXED_RULES}
    if len(tasks) >= 2:
        per_rule["gate"] = kfold_gate_logprobs(tasks, folds)
    n_tokens = sum(len(t.targets) for t in tasks)
    nll = {name: float(-np.concatenate(v).sum() / n_tokens) for name, v in per_rule.items()}
    report = NllReport(
        dataset=str(dataset_path),
        tasks=len(tasks),
        tokens=n_tokens,
        top_k=top_k,
        folds=min(folds, len(tasks)) if len(tasks) >= 2 else 0,
        nll=nll,
        ppl={name: math.exp(min(v, 700)) for name, v in nll.items()},
        per_task=[
            {"tid": t.tid, "tokens": len(t.targets)}
            | {name: float(-per_rule[name][i].mean()) for name in per_rule}
            for i, t in enumerate(tasks)
        ],
        skipped=skipped,
    )
    path = Path(out_path) if out_path else Path(f"{Path(dataset_path).stem}.nll.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    report.json_path = str(path)
    path.write_text(json.dumps(asdict(report), indent=1))
    if echo is not None:
        echo(report.table())
        echo(f"wrote {path}")
        if skipped:
            echo(f"skipped {len(skipped)} task(s); reasons are in the JSON")
    return report


def train_gate_from_dataset(
    dataset_path: str | Path,
    small_model: Any,
    cloud_client: Any,
    out_path: str | Path,
    max_tasks: int | None = None,
    progress: bool = True,
    *,
    build_prompts: BuildPrompts | None = None,
    top_k: int = DEFAULT_TOP_K,
    seed: int = 0,
) -> GateReport:
    """Teacher-force the dataset, train the gate (early stopping on held-out tasks), save."""
    tasks, skipped = collect(
        dataset_path,
        small_model,
        cloud_client,
        build_prompts,
        max_tasks,
        progress,
        top_k=top_k,
        desc="gate data",
    )
    if len(tasks) < 2:
        raise ValueError(f"need at least 2 usable tasks to train the gate, got {len(tasks)}")
    x, y, groups = _stack(tasks)
    gate, stats = Gate.train(x, y, groups=groups, seed=seed)
    gate.meta.update({"top_k": top_k, "tasks": len(tasks), "dataset": Path(dataset_path).name})
    path = gate.save(out_path)
    # The fixed rules on the same held-out tasks as the gate's validation NLL.
    held = set(groups[stats.val_rows].tolist()) if stats.val_rows is not None else set()
    baseline = {}
    if held:
        for name in FIXED_RULES:
            lp = np.concatenate([t.rule_lp[name] for i, t in enumerate(tasks) if i in held])
            baseline[name] = float(-lp.mean())
    return GateReport(
        path=str(path),
        tasks=len(tasks),
        tokens=len(x),
        epochs=stats.epochs,
        train_nll=stats.train_nll,
        val_nll=stats.val_nll,
        baseline_val_nll=baseline,
        skipped=skipped,
    )
