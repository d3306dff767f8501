"""A ledger written before the chain existed is chained when the store is upgraded."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from edge_agent.store import open_store
from edge_agent.store.database import make_engine
from edge_agent.store.migrate import current_revision, head_revision, upgrade


@pytest.mark.parametrize("old_revision", ["0001", "0002", "0003"])
def test_old_ledger_rows_are_chained_on_upgrade(db_url: str, old_revision: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, old_revision)
    with engine.begin() as connection:
        for status, bytes_down in (("ok", 7), ("error", None), ("sending", None)):
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (created_at, user_id, mode, endpoint, method,"
                    " payload, bytes_up, bytes_down, status) VALUES ('2024-05-01 10:00:00.5',"
                    " 'u_old', 'sketch', '/v1/sketch', 'POST', X'7B7D', 2, :down, :status)"
                ),
                {"down": bytes_down, "status": status},
            )
    engine.dispose()

    with open_store(db_url) as store:
        assert current_revision(store.engine) == head_revision()
        report = store.ledger.verify()
        assert report.ok, report.problems
        # A 'sent' link for each row, an 'outcome' link for the two that ended.
        assert (report.entries, report.links) == (3, 5)
        rows, _ = store.ledger.query()
        assert all(row.chain_hash for row in rows)
        assert [row.status for row in rows] == ["sending", "error", "ok"]

        assert store.ledger.mark_interrupted() == [rows[0].id]
        new = store.ledger.begin("u_old", "sketch", "/v1/sketch", "POST", b"[]")
        store.ledger.finish(new, "ok", http_status=200, bytes_down=2)
        assert store.ledger.verify().ok
