"""Dataset tasks: read with the store's strict parser, contexts as the store loads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.prompts import private_messages
from edge_agent.store import DatasetFormatError, open_store
from edge_agent.store.cogenesis_format import import_file
from research.dataset import load_tasks, task_prompts
from tests.collab.toys import ToyModel

EXAMPLE = Path(__file__).resolve().parents[2] / "cogenesis" / "examples" / "example_profile.json"


def test_a_task_context_is_the_context_the_store_loads(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'edge.db'}")
    import_file(EXAMPLE, store.profiles, progress=False)
    items = json.loads(EXAMPLE.read_text())
    tasks = load_tasks(EXAMPLE)
    assert [t.tid for t in tasks] == [item["tid"] for item in items]
    for task, item in zip(tasks, items, strict=True):
        stored = store.profiles.load_context(task.context.user_id)
        assert task.context.fields == stored.fields
        assert list(task.context.fields) == list(stored.fields)  # same order in the prompt
        assert task.context.name == stored.name
        # One item's history; the store merges all items of a person.
        assert set(task.context.history) <= set(stored.history)
        assert task.instruction == item["conversations"][0]["value"]
        assert task.reference == item["conversations"][1]["value"]


def test_the_private_prompt_is_built_from_the_context_as_a_request_is():
    model = ToyModel()
    task = load_tasks(EXAMPLE, max_tasks=1)[0]
    private, _ = task_prompts(model)(task)
    expected = model.render_chat(private_messages(task.context, task.instruction))
    assert private == model.tokenize(expected)
    assert task.context.name and task.context.name in expected


def test_max_tasks_keeps_the_first_tasks_but_checks_the_whole_file(tmp_path):
    items = json.loads(EXAMPLE.read_text())
    assert len(load_tasks(EXAMPLE, max_tasks=1)) == 1
    items.append({"tid": "x", "conversations": [], "profile": [], "additional_profile": "Age: 3"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items))
    with pytest.raises(DatasetFormatError, match="Name"):
        load_tasks(path, max_tasks=1)


@pytest.mark.parametrize(("content", "message"), [("not json", "JSON"), ('{"a": 1}', "list")])
def test_a_file_that_is_no_dataset_fails_clearly(tmp_path, content, message):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(DatasetFormatError, match=message):
        load_tasks(path)
