"""Export then import gives back exactly what was stored, for any profile the API accepts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.store import DatasetFormatError, Store, UserNotFound, open_store
from edge_agent.store.cogenesis_format import export_users, import_items
from edge_agent.store.schemas import LINE_BREAKS, ProfileIn

# Ordinary text plus the characters that have broken the profile text before: every
# line break str.splitlines() knows, the label separator, and spaces at the ends.
TRICKY = sorted(LINE_BREAKS) + [":", " ", "\t", ";", "é", "\u00a0"]
text = st.text(
    alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), max_size=40
)
label = st.from_regex(r"[A-Za-z][A-Za-z0-9_ \-]{0,10}[A-Za-z0-9_\-]", fullmatch=True)
profiles = st.fixed_dictionaries(
    {"name": text},
    optional={
        "age": text,
        "occupation": text,
        "location": text,
        "private_information": text,
        "writing_style": text,
        "extra": st.dictionaries(label, text, max_size=3),
        "history": st.lists(
            st.fixed_dictionaries({"title": text, "text": text.filter(bool)}), max_size=3
        ),
    },
)


@pytest.fixture
def two_stores(tmp_path) -> Iterator[tuple[Store, Store]]:
    with (
        open_store(f"sqlite:///{tmp_path / 'a.db'}") as first,
        open_store(f"sqlite:///{tmp_path / 'b.db'}") as second,
    ):
        yield first, second


def stored(store: Store, user_id: str) -> dict:
    user = store.profiles.get_user(user_id).model_dump()
    for moment in ("created_at", "updated_at"):
        user.pop(moment)
    return user


@settings(
    max_examples=int(os.environ.get("ROUND_TRIP_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=profiles)
def test_any_accepted_profile_round_trips_exactly(two_stores, body: dict) -> None:
    source, target = two_stores
    try:
        profile = ProfileIn.model_validate(body)
    except ValidationError:
        return  # rejected up front: nothing stored, nothing to round-trip
    user_id = source.profiles.create_user(profile).id
    try:
        exported = export_users(source.profiles, [user_id])
        import_items(exported, target.profiles)
        assert stored(target, user_id) == stored(source, user_id)
        assert export_users(target.profiles, [user_id]) == exported
    finally:
        for store in (source, target):
            with suppress(UserNotFound):
                store.profiles.delete_user(user_id)


@pytest.mark.parametrize("brk", sorted(LINE_BREAKS))
def test_a_line_break_in_any_one_line_field_is_rejected(brk: str) -> None:
    for field in ("name", "age", "occupation", "location", "private_information"):
        body = {"name": "Ada", field: f"Paris{brk}Privacy_info: injected"}
        with pytest.raises(ValidationError, match="single line"):
            ProfileIn.model_validate(body)
    with pytest.raises(ValidationError, match="single line"):
        ProfileIn.model_validate({"name": "Ada", "extra": {"Pet": f"cat{brk}Name: Eve"}})


@pytest.mark.parametrize(
    "extra",
    [
        {"privacy_info": "x"},  # a paper label in another case reads back as that field
        {"LOCATION": "x"},
        {"Pet": "cat", "pet": "dog"},  # one field after reading back
        {"Pet ": "cat"},  # the label is stripped when read back
    ],
)
def test_extra_fields_that_would_read_back_as_others_are_rejected(extra: dict) -> None:
    with pytest.raises(ValidationError):
        ProfileIn.model_validate({"name": "Ada", "extra": extra})


people = st.sampled_from(["Ada Moss", "Ben Ortiz"])
items = st.lists(
    st.fixed_dictionaries(
        {
            "tid": st.sampled_from(["1_0_0", "1_0_1", "2_3_4"]),
            "person": people,
            "task": st.one_of(st.none(), text.filter(str.strip)),
            "reference": st.one_of(st.none(), text.filter(bool)),
            "additional": st.lists(text, max_size=2),
            "history": st.lists(st.tuples(text, text.filter(bool)), max_size=2),
        }
    ),
    min_size=1,
    max_size=4,
)


def dataset_item(spec: dict) -> dict:
    conversations = []
    if spec["task"] is not None:
        conversations.append({"from": "user", "value": spec["task"]})
        if spec["reference"] is not None:
            conversations.append({"from": "assistant", "value": spec["reference"]})
    return {
        "tid": spec["tid"],
        "conversations": conversations,
        "profile": [
            {"title": t, "text": x, "id": str(i)} for i, (t, x) in enumerate(spec["history"])
        ],
        "additional_profile": f"Name: {spec['person']}\nAge: 40",
        "additional_tasks": spec["additional"],
    }


@settings(
    max_examples=int(os.environ.get("ROUND_TRIP_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=items)
def test_any_imported_dataset_exports_and_reimports_to_the_same_rows(
    two_stores, specs: list[dict]
) -> None:
    source, target = two_stores
    try:
        report = import_items([dataset_item(spec) for spec in specs], source.profiles)
    except DatasetFormatError:
        return
    try:
        exported = export_users(source.profiles)
        import_items(exported, target.profiles)
        assert export_users(target.profiles) == exported
        for user_id in report.user_ids:
            assert stored(target, user_id) == stored(source, user_id)
            tasks = [t.model_dump(exclude={"id"}) for t in source.profiles.list_tasks(user_id)]
            again = [t.model_dump(exclude={"id"}) for t in target.profiles.list_tasks(user_id)]
            assert sorted(again, key=repr) == sorted(tasks, key=repr)
    finally:
        for store in (source, target):
            for user in store.profiles.list_users():
                store.profiles.delete_user(user.id)
