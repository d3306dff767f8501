"""CoGenesis dataset import and export."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from edge_agent.store import (
    DatasetFormatError,
    Store,
    UnexportableProfile,
    derive_user_id,
    open_store,
)
from edge_agent.store.cogenesis_format import (
    export_users,
    import_file,
    import_items,
    parse_item,
)
from edge_agent.store.models import LedgerEntry, Task, User, WritingSample
from edge_agent.store.schemas import ProfileIn

DEV_SET = Path(
    os.environ.get(
        "COGENESIS_DEV_SET",
        Path(__file__).resolve().parents[3] / "shared/data/cogenesis_context_aware_dev.json",
    )
)


def count_rows(store: Store, model: type) -> int:
    with store.db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_import_stores_one_user_per_distinct_person(
    store: Store, write_json: Callable[..., Path], three_items: list[dict]
) -> None:
    report = import_file(write_json(three_items), store.profiles, progress=False)

    assert (report.items, report.people, report.users_created) == (3, 2, 2)
    assert [user.name for user in report.users] == ["Ada Moss", "Ben Ortiz"]
    users = {u.name: u for u in store.profiles.list_users()}
    assert set(users) == {"Ada Moss", "Ben Ortiz"}
    assert users["Ada Moss"].history_count == 3  # merged without the duplicate
    assert users["Ada Moss"].task_count == 2
    assert users["Ben Ortiz"].task_count == 2  # main task + one additional task
    ada = store.profiles.load_context(users["Ada Moss"].id)
    assert [title for title, _ in ada.history] == ["A1", "A2", "A3"]


def test_user_ids_are_derived_from_the_person_and_stable(
    store: Store, write_json: Callable[..., Path], three_items: list[dict]
) -> None:
    report = import_file(write_json(three_items), store.profiles, progress=False)

    expected = derive_user_id("Ada Moss", "41", "Florist", "Tacoma, Washington")
    assert report.user_ids[0] == expected
    assert expected.startswith("u_") and len(expected) == 14
    # Case and spacing do not make a new person.
    assert derive_user_id(" ada  moss", "41", "florist", "tacoma, washington") == expected


def test_same_name_and_age_but_another_job_is_another_person(
    store: Store, make_item: Callable[..., dict]
) -> None:
    first = make_item("1", "Elena Torres", 37)
    second = make_item("2", "Elena Torres", 37)
    second["additional_profile"] = second["additional_profile"].replace("Florist", "Developer")

    report = import_items([first, second], store.profiles)

    assert report.people == 2


def test_reimport_is_idempotent(
    store: Store, write_json: Callable[..., Path], three_items: list[dict]
) -> None:
    path = write_json(three_items)
    import_file(path, store.profiles, progress=False)
    before = {u.id: u.data_version for u in store.profiles.list_users()}

    again = import_file(path, store.profiles, progress=False)

    assert (again.users_created, again.users_updated, again.users_unchanged) == (0, 0, 2)
    assert (again.samples_added, again.tasks_added) == (0, 0)
    assert {u.id: u.data_version for u in store.profiles.list_users()} == before
    assert count_rows(store, WritingSample) == 4 and count_rows(store, Task) == 4


def test_reimport_with_new_history_merges_and_bumps_data_version(
    store: Store, make_item: Callable[..., dict]
) -> None:
    import_items([make_item("1", "Ada Moss", 41)], store.profiles)
    user_id = store.profiles.list_users()[0].id

    report = import_items(
        [make_item("1", "Ada Moss", 41, history=[("New", "a new piece")])], store.profiles
    )

    assert report.users_updated == 1 and report.samples_added == 1
    user = store.profiles.get_user(user_id)
    assert user.data_version == 2 and len(user.history) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json", "not valid JSON (line 1"),
        (json.dumps({"tid": "1"}), "expected a JSON list of items"),
        (json.dumps("a string"), "expected a JSON list of items at the top level, got str"),
    ],
)
def test_a_file_that_is_not_a_dataset_is_rejected(
    store: Store, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(DatasetFormatError, match=re.escape(message)) as caught:
        import_file(path, store.profiles, progress=False)

    assert str(path) in str(caught.value)
    assert count_rows(store, User) == 0


def test_a_missing_file_is_a_dataset_format_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="cannot read the file"):
        import_file(tmp_path / "nope.json", store.profiles, progress=False)


def without_name(item: dict) -> dict:
    lines = item["additional_profile"].splitlines()
    item["additional_profile"] = "\n".join(line for line in lines if not line.startswith("Name"))
    return item


def wrong_history_text(item: dict) -> dict:
    item["profile"][0]["text"] = ["not", "text"]
    return item


@pytest.mark.parametrize(
    ("break_item", "field", "message"),
    [
        (without_name, "additional_profile.Name", "no 'Name: ...' line"),
        (lambda item: {k: v for k, v in item.items() if k != "profile"}, "profile", "required"),
        (wrong_history_text, "profile[0].text", "valid string"),
        (lambda item: {**item, "conversations": "hi"}, "conversations", "valid list"),
        (
            lambda item: {**item, "conversations": [{"from": "bot", "value": "x"}]},
            "conversations[0].from",
            "'user' or 'assistant'",
        ),
        (
            lambda item: {**item, "additional_profile": "Name: X\nno colon here"},
            "additional_profile line 2",
            "expected 'Label: value'",
        ),
        (lambda item: [item], None, "must be an object"),
        (
            lambda item: {**item, "additional_tasks": ["ok", "x" * 20_001]},
            "additional_tasks[1]",
            "at most 20000 characters",
        ),
    ],
)
def test_a_bad_item_names_its_index_and_field_and_nothing_is_written(
    store: Store,
    write_json: Callable[..., Path],
    break_item: Callable[[dict], object],
    field: str | None,
    message: str,
    three_items: list[dict],
) -> None:
    items = three_items
    items[2] = break_item(items[2])  # the first two items are fine and come first

    with pytest.raises(DatasetFormatError, match=re.escape(message)) as caught:
        import_file(write_json(items), store.profiles, progress=False)

    assert caught.value.item == 2
    assert "item 2" in str(caught.value)
    if field:
        assert caught.value.field == field
    assert count_rows(store, User) == 0
    assert count_rows(store, WritingSample) == 0
    assert count_rows(store, Task) == 0


def test_a_field_over_the_size_limit_is_rejected_before_anything_is_written(
    store: Store, three_items: list[dict]
) -> None:
    items = three_items
    items[1]["additional_profile"] += "\nNote: " + "x" * 5000

    with pytest.raises(DatasetFormatError, match="at most 4000 characters") as caught:
        import_items(items, store.profiles)

    assert (caught.value.item, caught.value.field) == (1, "additional_profile.Note")
    assert count_rows(store, User) == 0


def test_a_failure_while_writing_rolls_back_every_person(
    store: Store, three_items: list[dict]
) -> None:
    people = [parse_item(i, item) for i, item in enumerate(three_items)]

    def two_then_fail():
        yield people[0]
        yield people[1]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        store.profiles.import_profiles(two_then_fail())

    assert count_rows(store, User) == 0 and count_rows(store, WritingSample) == 0


def test_export_round_trips_the_dataset_format(
    store: Store, make_item: Callable[..., dict]
) -> None:
    items = [
        make_item("7_1_0", "Ada Moss", 41, additional=["Plan a picnic.", "Write a haiku."]),
        make_item("7_1_1", "Ben Ortiz", 29, reference=None),
    ]
    items[0]["additional_profile"] += "\nFavorite_color: green"
    import_items(items, store.profiles)

    exported = export_users(store.profiles)

    assert sorted(exported, key=lambda item: item["tid"]) == items
    assert export_users(store.profiles, [store.profiles.list_users()[0].id]) == [items[0]]


def test_export_of_a_merged_person_reimports_to_the_same_rows(
    store: Store, db_url: str, three_items: list[dict]
) -> None:
    import_items(three_items, store.profiles)
    exported = export_users(store.profiles)
    assert len(exported) == 3  # one item per main task; history merged in each

    with open_store(db_url.replace("edge.db", "copy.db")) as copy:
        import_items(exported, copy.profiles)
        assert export_users(copy.profiles) == exported


def test_import_does_not_touch_the_ledger(store: Store, three_items: list[dict]) -> None:
    store.ledger.begin(None, "sketch", "/v1/sketch", "POST", b"{}")
    import_items(three_items, store.profiles)
    assert count_rows(store, LedgerEntry) == 1


@pytest.mark.skipif(not DEV_SET.is_file(), reason="the CoGenesis dev set is not on this machine")
def test_the_dev_set_imports_and_exports_unchanged(store: Store) -> None:
    original = json.loads(DEV_SET.read_text(encoding="utf-8"))

    report = import_file(DEV_SET, store.profiles, progress=False)
    again = import_file(DEV_SET, store.profiles, progress=False)

    assert report.items == len(original)
    # Same name and age is not the same person in this set, so every item is one person.
    assert report.people == len({item["additional_profile"] for item in original})
    assert again.users_unchanged == report.people
    by_tid = {item["tid"]: item for item in original}
    exported = export_users(store.profiles)
    assert len(exported) == len(original)
    assert all(by_tid[item["tid"]] == item for item in exported)


CANARY = "my diagnosis is HIV positive and my PIN is 4431"


def with_profile_text(text: str) -> Callable[[dict], dict]:
    def change(item: dict) -> dict:
        item["additional_profile"] = text
        return item

    return change


@pytest.mark.parametrize(
    "break_item",
    [
        with_profile_text(f"Name: Ada\n{CANARY}"),  # a line without a colon
        with_profile_text(f"Name: Ada\n{CANARY}, really: yes"),  # not a label
        with_profile_text(f"Name: Ada\nNote: {CANARY}\nnote: {CANARY}"),  # twice
        with_profile_text(f"Name: Ada\nPrivacy_info: {CANARY}" + "x" * 4000),  # too long
        with_profile_text(f"Age: {CANARY}\nName: Ada"),  # age over its 32 characters
        lambda item: {**item, "conversations": [{"from": CANARY, "value": "x"}]},
        lambda item: {**item, "tid": CANARY * 3},
    ],
)
def test_import_errors_name_the_place_never_the_private_text(
    store: Store, write_json: Callable[..., Path], three_items: list[dict], break_item
) -> None:
    three_items[1] = break_item(three_items[1])

    with pytest.raises(DatasetFormatError) as caught:
        import_file(write_json(three_items), store.profiles, progress=False)

    message = str(caught.value)
    assert "item 1" in message and caught.value.field
    for word in ("HIV", "4431", "diagnosis"):
        assert word not in message
    assert count_rows(store, User) == 0


def test_a_file_that_is_not_utf8_is_named_without_its_bytes(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(f'[{{"x": "{CANARY} \xe9"}}]'.encode("latin-1"))
    with pytest.raises(DatasetFormatError, match="not UTF-8") as caught:
        import_file(path, store.profiles, progress=False)
    assert "HIV" not in str(caught.value)


def test_two_items_for_one_person_that_disagree_are_an_error_naming_both(
    store: Store, make_item: Callable[..., dict]
) -> None:
    first = make_item("1", "Ada Moss", 41)
    second = make_item("2", "Ada Moss", 41)
    second["additional_profile"] = second["additional_profile"].replace(
        "Saving for a sailboat", "Owes money to a friend"
    )

    with pytest.raises(DatasetFormatError, match="same person") as caught:
        import_items([first, second], store.profiles)

    assert caught.value.item == 1 and "item 0" in str(caught.value)
    assert "Privacy_info" in str(caught.value) and "sailboat" not in str(caught.value)
    assert count_rows(store, User) == 0

    report = import_items([first, second], store.profiles, merge=True)
    assert report.people == 1
    assert report.warnings and "kept item 0" in report.warnings[0]
    ada = store.profiles.load_context(report.user_ids[0])
    assert "Saving for a sailboat" in ada.fields["Privacy_info"]


def test_short_fields_with_a_line_break_are_rejected_on_import(
    store: Store, make_item: Callable[..., dict]
) -> None:
    item = make_item("1", "Ada Moss", 41)
    item["additional_profile"] = item["additional_profile"].replace(
        "Tacoma, Washington", "Tacoma\u2028Privacy_info: injected"
    )
    with pytest.raises(DatasetFormatError, match="line"):
        import_items([item], store.profiles)
    assert count_rows(store, User) == 0


def test_a_stored_line_break_from_an_older_release_is_not_exported_as_new_fields(
    store: Store,
) -> None:
    user_id = store.profiles.create_user(ProfileIn(name="Ada Moss", location="Paris")).id
    with store.db.writing() as session:  # as an older release could have stored it
        session.execute(
            update(User).values(location="Paris\nPrivacy_info: injected", occupation="a\nb")
        )

    with pytest.raises(UnexportableProfile) as caught:
        export_users(store.profiles, [user_id])

    assert "Location" in str(caught.value) and "Occupation" in str(caught.value)
    assert "injected" not in str(caught.value) and "Paris" not in str(caught.value)
