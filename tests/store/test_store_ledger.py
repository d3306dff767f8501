"""The outbound ledger: exact bytes first, outcome later, queries with filters and pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from edge_agent.store import InvalidQuery, LedgerEntryNotFound, Store
from edge_agent.store.models import LedgerEntry


def test_begin_stores_the_exact_bytes_before_sending(store: Store) -> None:
    payload = '{"instruction": "Write a toast for <PERSON>", "x": "\u00e9"}'.encode()

    entry_id = store.ledger.begin(
        "u1",
        "sketch",
        "/v1/sketch",
        "post",
        payload,
        guard_policy="redact",
        guard_findings={"counts": {"PERSON": 1}},
        request_id="req-1",
    )

    entry = store.ledger.get(entry_id)
    assert entry.payload == payload and entry.bytes_up == len(payload)
    assert (entry.status, entry.method, entry.request_id) == ("sending", "POST", "req-1")
    assert entry.guard_findings == {"counts": {"PERSON": 1}}
    assert entry.bytes_down is None and entry.http_status is None


def test_begin_refuses_text_instead_of_bytes(store: Store) -> None:
    with pytest.raises(TypeError, match="exact bytes"):
        store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", "not bytes")  # type: ignore[arg-type]


def test_finish_records_the_outcome(store: Store) -> None:
    ok = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"{}")
    failed = store.ledger.begin("u1", "logits", "/v1/sessions", "POST", b"{}")

    store.ledger.finish(ok, "ok", http_status=200, bytes_down=512, duration_ms=12.5)
    store.ledger.finish(failed, "error", http_status=None, duration_ms=3.0, error="timeout")

    assert store.ledger.get(ok).model_dump(
        include={"status", "http_status", "bytes_down", "duration_ms"}
    ) == {"status": "ok", "http_status": 200, "bytes_down": 512, "duration_ms": 12.5}
    assert (store.ledger.get(failed).status, store.ledger.get(failed).error) == (
        "error",
        "timeout",
    )


def test_finish_checks_its_arguments(store: Store) -> None:
    entry_id = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"{}")
    with pytest.raises(ValueError, match="status must be one of"):
        store.ledger.finish(entry_id, "sending")
    with pytest.raises(LedgerEntryNotFound):
        store.ledger.finish(9999, "ok")


def test_query_filters_by_user_mode_and_time_newest_first(store: Store) -> None:
    a1 = store.ledger.begin("alice", "sketch", "/v1/sketch", "POST", b"1")
    b1 = store.ledger.begin("bob", "logits", "/v1/sessions", "POST", b"2")
    a2 = store.ledger.begin("alice", "logits", "/v1/sessions/s/step", "POST", b"3")

    def ids(**filters: object) -> list[int]:
        entries, total = store.ledger.query(**filters)
        assert total == len(entries)
        return [e.id for e in entries]

    assert ids() == [a2, b1, a1]
    assert ids(user_id="alice") == [a2, a1]
    assert ids(mode="logits") == [a2, b1]
    assert ids(user_id="alice", mode="sketch") == [a1]
    now = datetime.now(UTC)
    assert ids(since=now - timedelta(minutes=1)) == [a2, b1, a1]
    assert ids(since=now + timedelta(minutes=1)) == []
    assert ids(until=now - timedelta(minutes=1)) == []
    naive_future = (now + timedelta(minutes=1)).replace(tzinfo=None)  # taken as UTC
    assert ids(until=naive_future) == [a2, b1, a1]
    assert ids(since=now.timestamp() - 60, until=now.timestamp() + 60) == [a2, b1, a1]


def test_query_pages_and_reports_the_total(store: Store) -> None:
    created = [store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"x") for _ in range(7)]

    first, total = store.ledger.query(limit=3)
    third, _ = store.ledger.query(limit=3, offset=6)
    beyond, total_beyond = store.ledger.query(limit=3, offset=20)

    assert total == total_beyond == 7
    assert [e.id for e in first] == created[::-1][:3]
    assert [e.id for e in third] == [created[0]]
    assert beyond == []
    with pytest.raises(ValueError, match="limit"):
        store.ledger.query(limit=0)
    with pytest.raises(ValueError, match="offset"):
        store.ledger.query(offset=-1)


def test_ledger_ids_are_never_reused(store: Store) -> None:
    first = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"x")
    with store.db.writing() as session:
        session.execute(delete(LedgerEntry))

    second = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"x")
    assert second > first


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"since": 1e20}, []),  # far future: nothing yet
        ({"until": 1e20}, "all"),
        ({"until": -1e17}, []),  # before year 1: nothing
        ({"since": -1e17}, "all"),
        ({"offset": 2**62}, []),
    ],
)
def test_times_and_offsets_past_any_calendar_are_answered_not_crashed(
    store: Store, filters: dict, expected: object
) -> None:
    created = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"x")
    entries, total = store.ledger.query(**filters)
    assert [e.id for e in entries] == ([created] if expected == "all" else [])


@pytest.mark.parametrize(
    "filters",
    [
        {"since": float("nan")},
        {"since": float("inf")},
        {"until": float("-inf")},
        {"offset": 99999999999999999999},
    ],
)
def test_times_that_are_not_numbers_and_huge_offsets_are_an_invalid_query(
    store: Store, filters: dict
) -> None:
    with pytest.raises(InvalidQuery):
        store.ledger.query(**filters)
