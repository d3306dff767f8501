"""The evaluation run: answers, reference NLL and judge ratings, each checkpointed.

OUT/ holds ``answers.jsonl`` (tid|mode -> text, cost, leakage), ``nll.jsonl`` (tid ->
NLL per mode), ``ratings.jsonl`` (tid|mode|rubric -> rating), ``judge_cache.jsonl``
(every judge reply) and ``edge.db`` (the edge's store and ledger). A rerun skips what is
done; the report is rebuilt from the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edge_agent.outbound import CloudError
from edge_agent.store.cogenesis_format import import_items
from research.dataset import task_of
from research.evaluate.modes import ModeRunner
from research.evaluate.reference_nll import evaluation_client, task_nll
from research.jsonl import JsonlTable
from research.judge import RUBRICS, Judge


class EvalError(RuntimeError):
    pass


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...]
    max_tokens: int = 128
    nll_tokens: int = 64
    judge_concurrency: int = 1
    skip_nll: bool = False


@dataclass
class EvalData:
    records: list[dict]
    answers: dict[str, dict]
    nll: dict[str, dict[str, float]]
    ratings: dict[str, dict]
    errors: list[dict[str, str]]


def answer_key(tid: str, mode: str) -> str:
    return f"{tid}|{mode}"


def rating_key(tid: str, mode: str, rubric: str) -> str:
    return f"{tid}|{mode}|{rubric}"


def check_out_dir(out: Path, identity: dict[str, Any]) -> None:
    """A rerun must use the same dataset, model and budgets, or its checkpoints lie."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "run.json"
    if stamp.exists():
        theirs = json.loads(stamp.read_text(encoding="utf-8"))
        changed = sorted(k for k in identity if theirs.get(k) != identity[k])
        if changed:
            raise EvalError(
                f"{out} holds a run made with other settings ({', '.join(changed)}); "
                "pass another --out"
            )
    stamp.write_text(json.dumps(identity, indent=1), encoding="utf-8")


def dataset_digest(records: Sequence[dict]) -> str:
    blob = json.dumps(list(records), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def import_users(services: Any, records: list[dict]) -> list[str]:
    """Store the records' people in the edge's store; their user id per record."""
    import_items(records, services.store.profiles)
    return [task_of(i, r).context.user_id for i, r in enumerate(records)]


def run_eval(
    services: Any,
    runner: ModeRunner,
    judge: Judge,
    records: list[dict],
    config: EvalConfig,
    out: Path,
    *,
    cloud_url: str,
    cloud_token: str | None,
    progress: bool = True,
    echo: Callable[[str], Any] = print,
) -> EvalData:
    answers = JsonlTable(out / "answers.jsonl")
    nll = JsonlTable(out / "nll.jsonl")
    ratings = JsonlTable(out / "ratings.jsonl")
    users = import_users(services, records)
    errors: list[dict[str, str]] = []
    nll_client = None if config.skip_nll else evaluation_client(cloud_url, cloud_token)

    todo = [
        (record, user, mode)
        for record, user in zip(records, users, strict=True)
        for mode in config.modes
        if answer_key(record["tid"], mode) not in answers
    ]
    for record, user, mode in tqdm(todo, desc="answers", unit="answer", disable=not progress):
        try:
            answer = runner.run(mode, record, user)
        except (CloudError, RuntimeError, ValueError) as exc:
            errors.append({"tid": record["tid"], "mode": mode, "error": str(exc)})
            continue
        answers.put(answer_key(record["tid"], mode), answer.as_json())

    if nll_client is not None:
        pending = [(r, u) for r, u in zip(records, users, strict=True) if r["tid"] not in nll]
        for record, user in tqdm(pending, desc="reference NLL", unit="task", disable=not progress):
            sketch = answers.get(answer_key(record["tid"], "cogenesis-sketch")) or {}
            try:
                ctx = services.store.profiles.load_context(user)
                values = task_nll(
                    services,
                    nll_client,
                    record,
                    ctx,
                    config.modes,
                    sketch.get("sketch_points"),
                    max_tokens=config.nll_tokens,
                )
            except (CloudError, ValueError) as exc:
                errors.append({"tid": record["tid"], "mode": "nll", "error": str(exc)})
                continue
            nll.put(record["tid"], values)
        nll_client.close()

    # Task, then rubric, then mode: consecutive judge prompts then differ only in the
    # answer, near their end, so a serving engine reuses the prefix it just computed.
    jobs = [
        (record, mode, rubric)
        for record in records
        for rubric in RUBRICS
        for mode in config.modes
        if answer_key(record["tid"], mode) in answers
        and rating_key(record["tid"], mode, rubric) not in ratings
    ]

    def rate(job: tuple[dict, str, str]) -> None:
        record, mode, rubric = job
        answer = answers.get(answer_key(record["tid"], mode))
        rating = judge.rate(
            rubric,
            str(record["conversations"][0]["value"]),
            answer["text"],
            str(record.get("additional_profile", "")),
            [(str(p.get("title", "")), str(p.get("text", ""))) for p in record.get("profile", [])],
        )
        if rating.error is None:  # an unreachable judge is retried on the next run
            ratings.put(rating_key(record["tid"], mode, rubric), rating.as_json())
        else:
            errors.append({"tid": record["tid"], "mode": mode, "error": rating.error})

    with ThreadPoolExecutor(max_workers=max(1, config.judge_concurrency)) as pool:
        list(tqdm(pool.map(rate, jobs), total=len(jobs), desc="judge", disable=not progress))

    for error in errors[:5]:
        echo(f"error: {error['tid']} {error['mode']}: {error['error']}")
    if len(errors) > 5:
        echo(f"... and {len(errors) - 5} more errors (in report.json)")
    return EvalData(
        records=records,
        answers=dict(answers.items()),
        nll=dict(nll.items()),
        ratings=dict(ratings.items()),
        errors=errors,
    )
