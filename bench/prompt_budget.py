"""Relevance-selected past writings in the budgeted private prompt, on the dev set.

Three measurements, all on the device (no cloud):
  - recall@4: each user's history is their own 4 writings mixed into 200 writings by
    other users; how many of the 4 writings ranked first for the user's tasks are theirs;
  - selection time per request at 1,000 and 10,000 history items (ranking, and ranking
    plus assembling the prompt), after the index is built once (its build time is shown);
  - reference NLL of the small model (teacher-forced on the dev set's reference answer)
    with relevance-selected writings against the first N writings, both within the
    budget, over a history of the user's writings shuffled among 56 of other users.

    python -m bench.prompt_budget [DATASET.json] [--users 150] [--nll-tasks 20]

Goals (issue 9): recall@4 >= 0.9; selection <= 20 ms at 10,000 items.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from bench import DEFAULT_DATASET, RESULTS
from bench.harness import load_tasks as load_records
from edge_agent.conversation import Conversation
from edge_agent.prompt_budget import BudgetLimits, assemble
from edge_agent.retrieval import HistoryIndex
from edge_agent.slm import SmallModel
from edge_agent.store.context import UserContext
from research.dataset import DatasetTask, load_tasks
from research.teacher_forcing import reference_tokens
from shared_protocol.defaults import default_gguf_path

OWN = 4
OTHERS = 200
SIZES = (1_000, 10_000)
NLL_POOL = 60
N_CTX = 4096
MAX_TOKENS = 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--nll-tasks", type=int, default=20)
    parser.add_argument("--queries", type=int, default=20, help="timed requests per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "prompt_budget.json")
    args = parser.parse_args()

    records = load_records(args.dataset, args.users, "prompt_budget")
    tasks = {t.tid: t for t in load_tasks(args.dataset, len(records))}
    users = [(tasks[r["tid"]], r.get("additional_tasks", [])) for r in records if r["tid"] in tasks]
    model = SmallModel(default_gguf_path(), n_ctx=N_CTX)
    results = {
        "recall": recall_at_4(users, random.Random(args.seed)),
        "selection": selection_times(model, users, args.queries, random.Random(args.seed)),
        "nll": nll_relevance_vs_first(model, users, args.nll_tasks, random.Random(args.seed)),
    }
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


def writings_of(task: DatasetTask) -> list[tuple[str, str]]:
    return list(task.context.history)


def with_history(task: DatasetTask, history: list[tuple[str, str]]) -> UserContext:
    return UserContext(task.context.user_id, task.context.name, task.context.fields, tuple(history))


def recall_at_4(users: list[tuple[DatasetTask, list[str]]], rng: random.Random) -> dict:
    hits, queries = [], 0
    for i, (task, extra) in enumerate(tqdm(users, desc="recall", unit="user")):
        own = writings_of(task)[:OWN]
        others = [w for j, (t, _) in enumerate(users) if j != i for w in writings_of(t)]
        history = own + rng.sample(others, OTHERS)
        index = HistoryIndex(history)
        for query in [task.instruction, *extra]:
            top = index.rank(query, task.context.profile_text())[:OWN]
            hits.append(sum(k < len(own) for k in top) / len(own))
            queries += 1
    return {"recall_at_4": round(float(np.mean(hits)), 4), "queries": queries, "users": len(users)}


def selection_times(
    model: SmallModel, users: list[tuple[DatasetTask, list[str]]], queries: int, rng: random.Random
) -> list[dict]:
    every = [w for task, _ in users for w in writings_of(task)]
    rows = []
    for size in SIZES:
        history = [(f"{t} ({n})", x) for n, (t, x) in enumerate(rng.choices(every, k=size))]
        started = time.perf_counter()
        index = HistoryIndex(history)
        build_s = time.perf_counter() - started
        rank_ms, total_ms = [], []
        for task, _ in users[:queries]:
            ctx = with_history(task, history)
            started = time.perf_counter()
            ranked = index.rank(task.instruction, ctx.profile_text())
            ranked_at = time.perf_counter()
            assemble(
                model,
                ctx,
                Conversation(task.instruction),
                budget=N_CTX - MAX_TOKENS - 1,
                ranked=ranked,
                limits=BudgetLimits(),
            )
            done = time.perf_counter()
            rank_ms.append((ranked_at - started) * 1000)
            total_ms.append((done - started) * 1000)
        rows.append(
            {
                "items": size,
                "index_build_s": round(build_s, 3),
                "rank_ms_median": round(statistics.median(rank_ms), 2),
                "rank_ms_p95": round(float(np.percentile(rank_ms, 95)), 2),
                "select_and_assemble_ms_median": round(statistics.median(total_ms), 2),
                "requests": len(rank_ms),
            }
        )
    return rows


def nll_relevance_vs_first(
    model: SmallModel,
    users: list[tuple[DatasetTask, list[str]]],
    n_tasks: int,
    rng: random.Random,
) -> dict:
    every = [(i, w) for i, (task, _) in enumerate(users) for w in writings_of(task)]
    per_task = []
    for i, (task, _) in enumerate(tqdm(users[:n_tasks], desc="nll", unit="task")):
        if not task.reference:
            continue
        own = writings_of(task)
        others = [w for j, w in every if j != i]
        history = own + rng.sample(others, NLL_POOL - len(own))
        rng.shuffle(history)
        ctx = with_history(task, history)
        targets = reference_tokens(model, task.reference, MAX_TOKENS)
        ranked = HistoryIndex(history).rank(task.instruction, ctx.profile_text())
        row = {"tid": task.tid}
        for name, order in (("relevance", ranked), ("first_n", list(range(len(history))))):
            built = assemble(
                model,
                ctx,
                Conversation(task.instruction),
                budget=N_CTX - len(targets) - 1,
                ranked=order,
            )
            own_used = sum(history[k] in own for k in built.report.writings_chosen)
            row[name] = {"nll": teacher_forced_nll(model, built.tokens, targets), "own": own_used}
        per_task.append(row)
    summary = {
        name: {
            "mean_nll": round(float(np.mean([r[name]["nll"] for r in per_task])), 4),
            "own_writings_used": round(float(np.mean([r[name]["own"] for r in per_task])), 2),
        }
        for name in ("relevance", "first_n")
    }
    return {"summary": summary, "tasks": per_task}


def teacher_forced_nll(model: SmallModel, prompt: list[int], targets: list[int]) -> float:
    """Mean negative log-likelihood per reference token, given the private prompt."""
    with model.lock:
        first = model.start(prompt)
        rest = model.append_all(targets[:-1], keep_last=None) if len(targets) > 1 else []
    rows = np.vstack([first[None, :], *([rest] if len(rest) else [])])
    return round(float(-np.mean(rows[np.arange(len(targets)), targets])), 4)


def print_table(results: dict) -> None:
    recall = results["recall"]
    print(
        f"\nrecall@4: {recall['recall_at_4']} over {recall['queries']} tasks of "
        f"{recall['users']} users (own {OWN} writings among {OTHERS} of others; goal >= 0.9)"
    )
    print("\nselection per request (goal <= 20 ms at 10,000 items):")
    print(tabulate(results["selection"], headers="keys"))
    nll = results["nll"]["summary"]
    print(f"\nreference NLL, history of {NLL_POOL} (own writings shuffled among others'):")
    print(
        tabulate(
            [[name, v["mean_nll"], v["own_writings_used"]] for name, v in nll.items()],
            headers=["selection", "mean NLL / token", "own writings in the prompt"],
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
