"""From the steps' values to CoGenesis-format files, validated and split by user.

Each user's items pass the same validation as ``cogenesis profiles import`` (they are
imported into a throw-away in-memory store); a user whose items fail is left out and
counted. The users are then shuffled (seeded) into train, dev and test, so that no
person appears in two splits.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.store import DatasetFormatError, open_store
from edge_agent.store.cogenesis_format import import_items
from research.files import write_text_atomic
from research.synthesize.pipeline import Steps
from research.synthesize.schemas import profile_text

SPLITS = ("train", "dev", "test")


@dataclass
class Dataset:
    users: dict[str, list[dict]]  # user key -> items
    left_out: list[dict[str, str]] = field(default_factory=list)

    @property
    def items(self) -> list[dict]:
        return [item for items in self.users.values() for item in items]


def assemble(steps: Steps) -> Dataset:
    """One item per task with a reference text; history = the texts that were written."""
    users: dict[str, list[dict]] = {}
    left_out: list[dict[str, str]] = []
    for ukey, assigned in steps.tasks.items():
        profile = steps.users[ukey]
        history = [
            {"title": task, "text": steps.texts[f"{ukey}/h{k}"], "id": str(k)}
            for k, task in enumerate(assigned["history"])
            if f"{ukey}/h{k}" in steps.texts
        ]
        items = [
            {
                "tid": tid_of(ukey, k),
                "conversations": [
                    {"from": "user", "value": task},
                    {"from": "assistant", "value": steps.texts[f"{ukey}/t{k}"]},
                ],
                "profile": history,
                "additional_profile": profile_text(profile),
                "additional_tasks": [],
            }
            for k, task in enumerate(assigned["tasks"])
            if f"{ukey}/t{k}" in steps.texts
        ]
        if not items:
            left_out.append({"user": ukey, "reason": "no task got a usable reference text"})
            continue
        problem = import_problem(items)
        if problem:
            left_out.append({"user": ukey, "reason": problem})
            continue
        users[ukey] = items
    return Dataset(users, left_out)


def tid_of(user_key: str, task: int) -> str:
    """ "g3/u7" + 4 -> "3_7_4", the paper's group_user_task ids."""
    group, user = user_key.split("/")
    return f"{group[1:]}_{user[1:]}_{task}"


def import_problem(items: list[dict]) -> str | None:
    """Why ``cogenesis profiles import`` would refuse these items, or None."""
    store = open_store("sqlite://")
    try:
        import_items(items, store.profiles)
    except DatasetFormatError as error:
        return str(error)
    finally:
        store.close()
    return None


def split_users(keys: list[str], seed: int, dev: float = 0.1, test: float = 0.1) -> dict:
    """Seeded split of user keys; dev and test get at least one user each from 3 users on."""
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_dev = max(1, round(n * dev)) if n >= 3 else 0
    n_test = max(1, round(n * test)) if n >= 3 else 0
    return {
        "test": order[:n_test],
        "dev": order[n_test : n_test + n_dev],
        "train": order[n_test + n_dev :],
    }


def write_dataset(dataset: Dataset, out: str | Path, seed: int) -> dict[str, Path]:
    """OUT (every item) and OUT.train/.dev/.test.json; each file appears whole or not at all."""
    out = Path(out)
    if not dataset.users:
        raise ValueError("no user survived validation; nothing to write")
    problem = import_problem(dataset.items)  # the whole file, as one import sees it
    if problem:
        raise ValueError(f"the assembled dataset does not import: {problem}")
    parts = split_users(list(dataset.users), seed)
    paths = {"all": out}
    paths |= {name: out.with_name(f"{out.stem}.{name}{out.suffix or '.json'}") for name in SPLITS}
    contents = {"all": dataset.items}
    for name in SPLITS:
        contents[name] = [item for key in parts[name] for item in dataset.users[key]]
    for name, path in paths.items():
        write_text_atomic(path, json.dumps(contents[name], indent=1, ensure_ascii=False))
    return paths
