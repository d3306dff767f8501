"""The synthesis pipeline's parts that need no model: readers reject junk and accept the
requested shapes, near-duplicates go, and an assembled dataset imports with the real
`cogenesis profiles import` and is split by user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main as edge_cli
from research.jsonl import JsonlTable
from research.synthesize.dataset import assemble, split_users, write_dataset
from research.synthesize.dedupe import duplicate_tasks, duplicate_users
from research.synthesize.pipeline import Steps
from research.synthesize.schemas import (
    is_repetitive,
    read_group,
    read_profile,
    read_tasks,
    read_text,
)

PROFILE = {
    "name": "Mara Quint",
    "age": "41",
    "occupation": "Ferry mechanic",
    "location": "Bergen, Norway",
    "personal_traits": ["Patient", "Blunt; funny"],
    "writing_style": "Short sentences; dry humour",
    "private_information": ["Is paying off her brother's debt", "Sleepwalks in winter"],
    "smart_device_usage": ["Tide alerts"],
    "ai_assistant_usage": ["Shift handover notes"],
}


def test_profile_reader_accepts_the_shape_and_normalizes_lists() -> None:
    text = "Sure! Here it is:\n```json\n" + json.dumps(PROFILE) + "\n```"
    value, reason = read_profile(text)
    assert reason is None
    # A ";" inside an item would split it in the profile text: it becomes a comma.
    assert value["age"] == 41 and value["personal_traits"] == ["Patient", "Blunt, funny"]
    assert value["writing_style"] == ["Short sentences", "dry humour"]
    assert value["assistant_usage"] == ["Shift handover notes"]


def test_profile_reader_repairs_json_cut_off_at_the_token_budget() -> None:
    cut = json.dumps(PROFILE)[:-30]
    value, reason = read_profile(cut)
    # The last field lost its value: rejected for that field, not for bad JSON.
    assert value is None and "ai_assistant_usage" in reason


@pytest.mark.parametrize(
    "junk",
    [
        "I am a helpful assistant.",
        '{"name": "<first and last name>", "age": 30}',
        json.dumps({**PROFILE, "name": "first and last name"}),
        json.dumps({**PROFILE, "age": 300}),
        json.dumps({**PROFILE, "private_information": ["<a private fact about their life>"]}),
        json.dumps({**PROFILE, "name": "Munjukke-Alderketbaa-Aeropede,"}),
    ],
)
def test_profile_reader_rejects_junk_with_a_reason(junk: str) -> None:
    value, reason = read_profile(junk)
    assert value is None and reason


def test_group_reader_rejects_an_echoed_or_cut_placeholder() -> None:
    assert read_group('{"group": "Nurses", "description": "Hospital nurses"}')[0] == {
        "group": "Nurses",
        "description": "Hospital nurses",
    }
    assert read_group('{"group": "Top Industries", "description": "<group of top"}')[0] is None


def test_task_reader_keeps_distinct_title_description_tasks() -> None:
    text = json.dumps(
        {
            "tasks": [
                "Write a Toast for My Sister: a short, funny toast for her wedding",
                {"title": "Draft a Complaint", "description": "to the ferry company about pay"},
                "<Title>: <one sentence describing what to write>",
                "No colon here",
            ]
        }
    )
    value, reason = read_tasks(text, need=2)
    assert reason is None and len(value) == 2
    assert value[1] == "Draft a Complaint: to the ferry company about pay"
    assert read_tasks(text, need=3)[0] is None


def test_text_reader_rejects_loops_fragments_and_control_tokens() -> None:
    prose = (
        "Handover, Tuesday night. The port engine idled rough again near Askøy, so I "
        "swapped the fuel filter and logged it. Nothing else to report except the coffee."
    )
    assert read_text(prose, "Write a handover note: tonight's shift", 40) == (prose, None)
    assert read_text("Too short.", "task", 40)[0] is None
    assert read_text(prose + "<|im_end|>", "task", 40)[0] is None
    assert read_text("Theo's response:\n" * 30, "task", 40)[0] is None
    assert is_repetitive("A: " * 80) and not is_repetitive(prose)


def test_near_duplicate_users_and_tasks_are_removed() -> None:
    users = [
        ("g0/u0", {"name": "Mara Quint", "occupation": "Ferry mechanic", "location": "Bergen"}),
        ("g0/u1", {"name": "Mara Quint", "occupation": "Ferry mechanic", "location": "Bergen."}),
        ("g0/u2", {"name": "Ola Berg", "occupation": "Ferry mechanic", "location": "Bergen"}),
    ]
    kept, dropped = duplicate_users(users, lambda kv: kv[1])
    assert [k for k, _ in kept] == ["g0/u0", "g0/u2"]
    assert [(a[0], b[0]) for a, b in dropped] == [("g0/u1", "g0/u0")]
    tasks = [
        "Write a Toast for My Sister: a funny toast for her wedding",
        "Write a Toast for my sister: a funny wedding toast for her",
        "Draft a Complaint: to the ferry company about late pay",
    ]
    kept_tasks, _ = duplicate_tasks(tasks, lambda t: t)
    assert kept_tasks == [tasks[0], tasks[2]]


def _steps(n_users: int) -> Steps:
    users, tasks, texts = {}, {}, {}
    for u in range(n_users):
        key = f"g0/u{u}"
        users[key] = read_profile(json.dumps({**PROFILE, "name": f"Mara Quint{'x' * u}"}))[0]
        tasks[key] = {"history": ["Old Post: about tides"], "tasks": ["Toast: for my sister"]}
        texts[f"{key}/h0"] = "The tide came in late today and I watched it from the slip."
        texts[f"{key}/t0"] = "To my sister, who never once let me win at cards: cheers."
    return Steps({}, users, tasks, texts, {}, {"users": [], "tasks": []})


def test_assembled_dataset_imports_with_the_cli_and_splits_by_user(tmp_path: Path) -> None:
    dataset = assemble(_steps(5))
    assert len(dataset.users) == 5 and not dataset.left_out
    paths = write_dataset(dataset, tmp_path / "synthetic.json", seed=1)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert edge_cli(["profiles", "import", str(paths["all"]), "--db", db]) == 0
    names = {}
    for split in ("train", "dev", "test"):
        items = json.loads(paths[split].read_text())
        names[split] = {i["additional_profile"].split("\n")[1] for i in items}
        assert items, split
    assert sum(len(v) for v in names.values()) == 5
    assert not (names["train"] & names["dev"]) and not (names["dev"] & names["test"])
    item = json.loads(paths["all"].read_text())[0]
    assert item["tid"] == "0_0_0" and item["profile"][0]["title"] == "Old Post: about tides"
    assert (
        "Privacy_info: Is paying off her brother's debt; Sleepwalks in winter"
        in (item["additional_profile"])
    )


def test_split_is_seeded_and_small_sets_all_train() -> None:
    keys = [f"g0/u{i}" for i in range(10)]
    assert split_users(keys, 3) == split_users(list(reversed(keys)), 3)
    assert split_users(keys, 3) != split_users(keys, 4)
    small = split_users(["a", "b"], 0)
    assert small["dev"] == small["test"] == [] and sorted(small["train"]) == ["a", "b"]


def test_a_user_whose_items_fail_import_is_left_out_not_written(tmp_path: Path) -> None:
    steps = _steps(2)
    steps.users["g0/u1"]["name"] = ""  # the importer requires a name
    dataset = assemble(steps)
    assert list(dataset.users) == ["g0/u0"]
    assert dataset.left_out[0]["user"] == "g0/u1" and "Name" in dataset.left_out[0]["reason"]


def test_checkpoint_survives_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "step.jsonl"
    table = JsonlTable(path)
    table.put("a", {"ok": True})
    with path.open("a") as out:
        out.write('{"key": "b", "value": {"ok"')  # the process died mid-line
    again = JsonlTable(path)
    assert "a" in again and "b" not in again and again.skipped_lines == 1
    again.put("b", 2)
    assert JsonlTable(path).get("b") == 2
