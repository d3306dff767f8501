"""The hash chain: intact after every way the edge writes, broken and named after any
edit, deletion, insertion or reordering made behind its back in the SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.store import LedgerEntryNotFound, Store
from edge_agent.store.chain import GENESIS
from edge_agent.store.errors import LedgerEntryFinished
from edge_agent.store.schemas import ProfileIn


def record(store: Store, user: str = "u1", payload: bytes = b'{"task": "a toast for <PERSON>"}'):
    entry = store.ledger.begin(
        user,
        "sketch",
        "/v1/sketch",
        "POST",
        payload,
        guard_policy="redact",
        guard_findings={"counts": {"PERSON": 1}, "score": 0.85},
        request_id="r",
    )
    store.ledger.finish(entry, "ok", http_status=200, bytes_down=321, duration_ms=12.25)
    return entry


@pytest.fixture
def sql(tmp_path: Path) -> Callable[..., None]:
    """Run SQL on the store's file with the sqlite3 module, as a tamperer would."""

    def run(statement: str, *params: object) -> None:
        with sqlite3.connect(tmp_path / "edge.db") as connection:
            connection.execute(statement, params)

    return run


def first_bad(store: Store) -> tuple[int | None, str]:
    report = store.ledger.verify()
    assert not report.ok and report.first is not None
    return report.first.entry_id, report.first.reason


def test_an_empty_ledger_verifies_and_its_head_is_the_genesis(store: Store) -> None:
    report = store.ledger.verify()
    assert report.ok and (report.links, report.entries) == (0, 0)
    assert store.ledger.head() == (0, GENESIS) and report.head == GENESIS


def test_every_write_extends_the_chain_and_moves_the_head(store: Store) -> None:
    heads = [store.ledger.head()]
    entry = store.ledger.begin("u1", "logits", "/v1/sessions", "POST", b"{}")
    heads.append(store.ledger.head())
    store.ledger.finish(entry, "ok", http_status=201, bytes_down=9, cloud_session="s-1")
    heads.append(store.ledger.head())
    record(store, "u2")

    report = store.ledger.verify()
    assert report.ok, report.problems
    assert (report.links, report.entries) == (4, 2)
    assert [seq for seq, _ in heads] == [0, 1, 2] and len({h for _, h in heads}) == 3
    assert store.ledger.get(entry).chain_hash == heads[2][1]
    assert report.head == store.ledger.head()[1]


def test_a_row_ends_once(store: Store) -> None:
    entry = record(store)
    with pytest.raises(LedgerEntryFinished, match="cannot end twice"):
        store.ledger.finish(entry, "error", error="late")
    with pytest.raises(LedgerEntryNotFound):
        store.ledger.finish(999, "ok")
    assert store.ledger.verify().ok


def test_editing_one_payload_byte_in_sqlite_names_that_row(store: Store, sql) -> None:
    record(store)
    target = record(store, payload=b'{"task": "a toast for <PERSON>", "n": 1}')
    record(store)
    assert store.ledger.verify().ok

    # One byte: "<PERSON>" becomes "<PERSOM>".
    sql(
        "UPDATE ledger_entries SET payload = CAST(replace(CAST(payload AS TEXT),"
        " 'PERSON', 'PERSOM') AS BLOB) WHERE id = ?",
        target,
    )

    report = store.ledger.verify()
    assert [p.entry_id for p in report.problems] == [target]
    assert first_bad(store) == (target, report.first.reason)
    assert "payload" in report.first.reason


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("status", "error", "status or outcome changed"),
        ("bytes_down", 1, "status or outcome changed"),
        ("endpoint", "/v1/elsewhere", "payload or what was recorded"),
        ("guard_findings", "{}", "payload or what was recorded"),
        ("user_id", "someone-else", "payload or what was recorded"),
        ("created_at", "2020-01-01 00:00:00.000000", "payload or what was recorded"),
    ],
)
def test_editing_any_recorded_field_names_the_row(
    store: Store, sql, column: str, value: object, reason: str
) -> None:
    record(store)
    target = record(store)
    sql(f"UPDATE ledger_entries SET {column} = ? WHERE id = ?", value, target)
    entry_id, found = first_bad(store)
    assert entry_id == target and reason in found


def test_a_row_set_back_to_sending_is_caught(store: Store, sql) -> None:
    target = record(store)
    sql("UPDATE ledger_entries SET status = 'sending' WHERE id = ?", target)
    assert first_bad(store) == (target, "it says 'sending' but the chain saw it end")


def test_deleting_a_row_in_sqlite_names_it(store: Store, sql) -> None:
    rows = [record(store) for _ in range(3)]
    sql("DELETE FROM ledger_entries WHERE id = ?", rows[1])
    entry_id, reason = first_bad(store)
    assert entry_id == rows[1] and "deleted outside the edge" in reason


def test_deleting_a_link_breaks_the_chain_where_it_was(store: Store, sql) -> None:
    rows = [record(store) for _ in range(3)]
    sql("DELETE FROM ledger_chain WHERE entry_id = ? AND event = 'outcome'", rows[1])
    report = store.ledger.verify()
    # The row's end is gone from the chain, and the next link no longer follows.
    assert report.first.entry_id == rows[1] and "never saw it end" in report.first.reason
    assert any(p.entry_id == rows[2] and "chain broken" in p.reason for p in report.problems)


def test_swapping_two_rows_names_the_first_of_them(store: Store, sql) -> None:
    rows = [record(store, payload=f'{{"n": {i}}}'.encode()) for i in range(4)]
    # Reorder: rows 1 and 2 trade places (their ids).
    sql("UPDATE ledger_entries SET id = -1 WHERE id = ?", rows[1])
    sql("UPDATE ledger_entries SET id = ? WHERE id = ?", rows[1], rows[2])
    sql("UPDATE ledger_entries SET id = ? WHERE id = -1", rows[2])
    report = store.ledger.verify()
    assert report.first.entry_id == rows[1]
    assert {p.entry_id for p in report.problems} == {rows[1], rows[2]}


def test_swapping_two_links_breaks_the_chain(store: Store, sql) -> None:
    rows = [record(store) for _ in range(3)]
    sql("UPDATE ledger_chain SET seq = -1 WHERE seq = 3")
    sql("UPDATE ledger_chain SET seq = 3 WHERE seq = 4")
    sql("UPDATE ledger_chain SET seq = 4 WHERE seq = -1")
    entry_id, reason = first_bad(store)
    assert entry_id == rows[1] and "chain broken at link 3" in reason


def test_a_row_inserted_behind_the_edges_back_is_named(store: Store, sql) -> None:
    record(store)
    sql(
        "INSERT INTO ledger_entries (id, created_at, user_id, mode, endpoint, method, payload,"
        " bytes_up, status) VALUES (77, '2024-05-01 10:00:00', 'u1', 'sketch', '/v1/sketch',"
        " 'POST', X'7B7D', 2, 'ok')"
    )
    assert first_bad(store) == (77, "the row is not in the chain (added outside the edge)")


def test_a_rewritten_link_hash_is_caught(store: Store, sql) -> None:
    rows = [record(store) for _ in range(2)]
    sql("UPDATE ledger_chain SET hash = ? WHERE seq = 2", "f" * 64)
    entry_id, reason = first_bad(store)
    assert entry_id == rows[0] and "chain broken at link 2" in reason


def test_a_cut_off_tail_is_caught_by_a_head_kept_elsewhere(store: Store, sql) -> None:
    record(store)
    last = record(store)
    _, kept = store.ledger.head()
    assert store.ledger.verify(expected_head=kept).ok

    # The newest row and its links vanish: what is left is a consistent, shorter chain.
    sql("DELETE FROM ledger_entries WHERE id = ?", last)
    sql("DELETE FROM ledger_chain WHERE entry_id = ?", last)

    assert store.ledger.verify().ok
    report = store.ledger.verify(expected_head=kept)
    assert not report.ok and report.expected_head_found is False


def test_deleting_a_user_with_their_ledger_is_an_erasure_the_chain_keeps(
    store: Store, sql, tmp_path: Path
) -> None:
    user = store.profiles.create_user(ProfileIn(name="Ada Moss", age="41")).id
    secret = b'{"task": "a note about the Harbor shelter"}'
    mine = [record(store, user, secret) for _ in range(2)]
    other = record(store, "someone-else")

    deleted = store.profiles.delete_user(user, include_ledger=True)

    assert deleted.ledger_entries == 2
    report = store.ledger.verify()
    assert report.ok, report.problems
    assert (report.entries, report.erased) == (1, 2)
    with sqlite3.connect(tmp_path / "edge.db") as connection:
        erasures = connection.execute(
            "SELECT entry_id, detail FROM ledger_chain WHERE event = 'erased'"
        ).fetchall()
    assert len(erasures) == 1 and erasures[0][0] is None
    detail = erasures[0][1]
    assert json.loads(detail)["entries"] == mine
    assert user not in detail and "Harbor" not in detail and "PERSON" not in detail
    # The other user's row is untouched and still chained.
    assert store.ledger.get(other).status == "ok"
    # An erasure record cannot be edited unnoticed either.
    sql("UPDATE ledger_chain SET detail = ? WHERE event = 'erased'", '{"entries": [], "at": "x"}')
    reasons = [p.reason for p in store.ledger.verify().problems]
    assert "the erasure record was edited" in reasons
    assert reasons[0] == "the row was deleted outside the edge (no erasure names it)"


def test_concurrent_writers_keep_one_unbroken_chain(store: Store) -> None:
    def work(user: str) -> None:
        for _ in range(15):
            record(store, user)

    threads = [threading.Thread(target=work, args=(f"u{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    report = store.ledger.verify()
    assert report.ok, report.problems[:3]
    assert (report.entries, report.links) == (60, 120)
