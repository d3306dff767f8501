"""The four steps, each a batch of LLM requests run concurrently and checkpointed.

Every request has a key ("g0", "g0/u1", "g0/u1/t2"). A step's checkpoint
(``WORK/<step>.jsonl``) holds, per key, the accepted value or the fact that every attempt
was junk, with the reasons. A rerun skips keys already there, and the LLM's answers are
cached (``WORK/responses.jsonl``), so no request is sent twice. Attempts of one key use
different seeds; a reply the step's reader rejects is counted and never written.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from research.jsonl import JsonlTable
from research.llm import ChatLlm
from research.synthesize import prompts
from research.synthesize.dedupe import duplicate_tasks, duplicate_users
from research.synthesize.schemas import (
    Read,
    profile_text,
    read_group,
    read_profile,
    read_tasks,
    read_text,
)

STEPS = ("groups", "users", "tasks", "texts")
AGE_BANDS = ((18, 24), (25, 34), (35, 49), (50, 64), (65, 85))


class SynthesisError(RuntimeError):
    pass


@dataclass(frozen=True)
class StepBudgets:
    """Max tokens of one reply, per step."""

    groups: int = 120
    users: int = 420
    tasks: int = 360
    texts: int = 600

    def capped(self, cap: int | None) -> StepBudgets:
        if cap is None:
            return self
        return StepBudgets(*(min(v, cap) for v in asdict(self).values()))


@dataclass(frozen=True)
class SynthesisConfig:
    groups: int
    users_per_group: int
    tasks_per_user: int
    history_per_user: int
    seed: int = 0
    attempts: int = 4
    concurrency: int = 4
    temperature: float = 0.9
    budgets: StepBudgets = StepBudgets()
    min_text_chars: int = 200

    def identity(self, model: str) -> dict[str, Any]:
        """What a work dir's answers depend on: reusing it under other values would mix
        two datasets. (Counts may grow: new keys are simply added.)"""
        return {
            "model": model,
            "seed": self.seed,
            "temperature": self.temperature,
            "budgets": asdict(self.budgets),
            "min_text_chars": self.min_text_chars,
        }


@dataclass(frozen=True)
class Job:
    key: str
    messages: list[dict[str, str]]
    max_tokens: int
    read: Callable[[str], Read]


@dataclass
class StepStats:
    keys: int = 0
    accepted: int = 0
    failed: int = 0  # keys whose every attempt was junk
    attempts: int = 0
    rejected: int = 0  # junk replies
    reasons: Counter = field(default_factory=Counter)


@dataclass
class Steps:
    """The accepted values of every step, and what it took."""

    groups: dict[str, dict]
    users: dict[str, dict]
    tasks: dict[str, dict[str, list[str]]]  # user key -> {"history": [...], "tasks": [...]}
    texts: dict[str, str]
    stats: dict[str, StepStats]
    duplicates: dict[str, list[dict[str, str]]]


class Pipeline:
    def __init__(
        self,
        llm: ChatLlm,
        config: SynthesisConfig,
        work_dir: str | Path,
        *,
        progress: bool = True,
    ) -> None:
        self.llm = llm
        self.config = config
        self.work = Path(work_dir)
        self.progress = progress
        self._check_work_dir()

    def _check_work_dir(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        stamp = self.work / "run.json"
        mine = self.config.identity(self.llm.model)
        if stamp.exists():
            theirs = json.loads(stamp.read_text(encoding="utf-8"))
            if theirs != mine:
                changed = sorted(k for k in mine if theirs.get(k) != mine[k])
                raise SynthesisError(
                    f"{self.work} holds a run made with other settings ({', '.join(changed)}); "
                    "pass another --work-dir to start afresh"
                )
        else:
            stamp.write_text(json.dumps(mine, indent=1), encoding="utf-8")

    # -- the steps ------------------------------------------------------------------------

    def run(self) -> Steps:
        c = self.config
        stats: dict[str, StepStats] = {}
        duplicates: dict[str, list[dict[str, str]]] = {"users": [], "tasks": []}

        group_jobs = []
        for i in range(c.groups):
            area = prompts.AREAS[(c.seed + i) % len(prompts.AREAS)]
            group_jobs.append(
                Job(f"g{i}", prompts.group_messages(area), c.budgets.groups, read_group)
            )
        groups, stats["groups"] = self._step("groups", group_jobs)

        user_jobs = []
        for gkey, group in groups.items():
            for j in range(c.users_per_group):
                key = f"{gkey}/u{j}"
                low, high = random.Random(f"{c.seed}/{key}").choice(AGE_BANDS)
                messages = prompts.profile_messages(group["group"], group["description"], low, high)
                user_jobs.append(Job(key, messages, c.budgets.users, read_profile))
        users, stats["users"] = self._step("users", user_jobs)
        kept, dropped = duplicate_users(list(users.items()), lambda kv: kv[1])
        duplicates["users"] = [{"dropped": a[0], "same_as": b[0]} for a, b in dropped]
        users = dict(kept)

        need = c.tasks_per_user + c.history_per_user
        least = 1 + (c.history_per_user > 0)  # one task with a reference (+ one history)
        task_jobs = [
            Job(
                key,
                prompts.tasks_messages(profile_text(profile), need),
                c.budgets.tasks,
                lambda text, least=least: read_tasks(text, least),
            )
            for key, profile in users.items()
        ]
        task_lists, stats["tasks"] = self._step("tasks", task_jobs)
        tasks = self._assign_tasks(task_lists, duplicates)

        text_jobs = []
        for ukey, assigned in tasks.items():
            about = profile_text(users[ukey])
            for role in ("history", "tasks"):
                for k, task in enumerate(assigned[role]):
                    text_jobs.append(
                        Job(
                            f"{ukey}/{role[0]}{k}",
                            prompts.text_messages(about, task),
                            c.budgets.texts,
                            lambda text, task=task: read_text(text, task, c.min_text_chars),
                        )
                    )
        texts, stats["texts"] = self._step("texts", text_jobs)
        return Steps(groups, users, tasks, texts, stats, duplicates)

    def _assign_tasks(
        self, task_lists: dict[str, list[str]], duplicates: dict[str, list[dict[str, str]]]
    ) -> dict[str, dict[str, list[str]]]:
        """Near-duplicate tasks go (within a user and across users); the first
        ``history_per_user`` tasks become writing history, the next ones the tasks."""
        c = self.config
        flat = [(ukey, task) for ukey, tasks in task_lists.items() for task in tasks]
        kept, dropped = duplicate_tasks(flat, lambda entry: entry[1])
        duplicates["tasks"] = [{"dropped": a[1], "same_as": b[1]} for a, b in dropped]
        out: dict[str, dict[str, list[str]]] = {}
        for ukey in task_lists:
            mine = [task for owner, task in kept if owner == ukey]
            history = mine[: min(c.history_per_user, len(mine) - 1)]
            rest = mine[len(history) :][: c.tasks_per_user]
            if rest:
                out[ukey] = {"history": history, "tasks": rest}
        return out

    # -- one step -------------------------------------------------------------------------

    def _step(self, name: str, jobs: list[Job]) -> tuple[dict[str, Any], StepStats]:
        table = JsonlTable(self.work / f"{name}.jsonl")
        todo = [job for job in jobs if job.key not in table]
        bar = tqdm(
            total=len(jobs),
            initial=len(jobs) - len(todo),
            desc=name,
            unit="req",
            disable=not self.progress,
        )
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            futures = {pool.submit(self._attempts, job): job for job in todo}
            try:
                for future in as_completed(futures):
                    table.put(futures[future].key, future.result())
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()  # what finished is in the checkpoint already
                raise
            finally:
                bar.close()
        stats = StepStats(keys=len(jobs))
        accepted: dict[str, Any] = {}
        for job in jobs:
            outcome = table.get(job.key)
            stats.attempts += outcome["attempts"]
            stats.rejected += len(outcome["rejected"])
            stats.reasons.update(outcome["rejected"])
            if outcome["ok"]:
                stats.accepted += 1
                accepted[job.key] = outcome["value"]
            else:
                stats.failed += 1
        return accepted, stats

    def _attempts(self, job: Job) -> dict[str, Any]:
        rejected: list[str] = []
        for attempt in range(max(1, self.config.attempts)):
            reply = self.llm.complete(
                job.messages,
                max_tokens=job.max_tokens,
                temperature=self.config.temperature,
                seed=request_seed(self.config.seed, job.key, attempt),
            )
            value, reason = job.read(reply.text)
            if value is not None:
                return {"ok": True, "value": value, "attempts": attempt + 1, "rejected": rejected}
            rejected.append(reason or "rejected")
        return {"ok": False, "value": None, "attempts": len(rejected), "rejected": rejected}


def request_seed(seed: int, key: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{seed}/{key}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
