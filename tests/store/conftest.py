"""Fixtures for the private store: a real SQLite file per test."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.store import Store, open_store


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened


def profile_text(name: str, age: int = 30, **extra: str) -> str:
    fields = {
        "Age": str(age),
        "Name": name,
        "Occupation": "Florist",
        "Location": "Tacoma, Washington",
        "Personal_traits": "Warm; Punctual",
        "Writing_style": "Plain; Friendly",
        "Privacy_info": "Volunteers at the Harbor animal shelter; Saving for a sailboat",
        "Smart_device_usage": "Calendar reminder for a dentist visit",
        "Ai_assistant_usage": "Drafting shop newsletters",
        **extra,
    }
    return "\n".join(f"{key}: {value}" for key, value in fields.items())


def make_item(
    tid: str,
    name: str,
    age: int = 30,
    history: list[tuple[str, str]] | None = None,
    task: str = "Write a short note to customers.",
    reference: str | None = "Dear customers, ...",
    additional: list[str] | None = None,
) -> dict:
    history = history if history is not None else [(f"{name} title", f"{name} wrote this.")]
    conversations = [{"from": "user", "value": task}]
    if reference is not None:
        conversations.append({"from": "assistant", "value": reference})
    return {
        "tid": tid,
        "conversations": conversations,
        "profile": [{"title": t, "text": x, "id": str(i)} for i, (t, x) in enumerate(history)],
        "additional_profile": profile_text(name, age),
        "additional_tasks": additional or [],
    }


@pytest.fixture(name="make_item")
def make_item_fixture() -> Callable[..., dict]:
    """Builds one dataset item; see :func:`make_item`."""
    return make_item


@pytest.fixture
def three_items() -> list[dict]:
    """Ada (two items, overlapping history), Ben (one item with an additional task)."""
    return [
        make_item("1_0_0", "Ada Moss", 41, history=[("A1", "ada one"), ("A2", "ada two")]),
        make_item("1_0_1", "Ben Ortiz", 29, additional=["Plan a picnic."]),
        make_item(
            "1_0_2",
            "Ada Moss",
            41,
            history=[("A2", "ada two"), ("A3", "ada three")],
            task="Write a toast.",
        ),
    ]


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[..., Path]:
    def write(data: object, name: str = "dataset.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write
