"""After a stop: rows left 'sending' become 'interrupted', and cloud sessions left open
are closed once the cloud answers, through the outbound client and into the ledger."""

from __future__ import annotations

import time

from cloud_service.tenants import DEFAULT_TENANT
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.recovery import recover
from edge_agent.store import Store
from edge_agent.store.ledger import INTERRUPTED_ERROR
from shared_protocol import SessionOpenRequest
from tests.ledger.conftest import CLOUD_TOKEN, CloudApp


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def client(store: Store, url: str) -> CloudClient:
    return CloudClient(
        url, token=CLOUD_TOKEN, ledger=store.ledger, retries=0, timeout_s=30, connect_timeout_s=1
    )


def open_session(cloud: CloudClient) -> str:
    request = SessionOpenRequest(prompt="Write one line about tulips.", top_k=5)
    reply = cloud.open_session(request, user_id="u1", mode="logits", usage=CloudUsage())
    return reply.session_id


def closes(store: Store, session_id: str) -> list[tuple[str, int | None]]:
    """How each close of the session ended, newest first."""
    rows, _ = store.ledger.query(limit=100)
    return [
        (row.status, row.http_status)
        for row in rows
        if row.method == "DELETE"
        and row.endpoint == f"/v1/sessions/{session_id}"
        and row.status != "sending"
    ]


def test_rows_left_sending_become_interrupted_and_stay_chained(store: Store) -> None:
    done = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", b"{}")
    store.ledger.finish(done, "ok", http_status=200, bytes_down=5)
    stuck = [store.ledger.begin("u1", "logits", "/v1/sessions/s/step", "POST", b"[1]")]
    stuck.append(store.ledger.begin("u2", "sketch", "/v1/sketch", "POST", b"{}"))

    assert store.ledger.mark_interrupted() == stuck
    assert store.ledger.mark_interrupted() == []

    for entry_id in stuck:
        entry = store.ledger.get(entry_id)
        assert (entry.status, entry.error, entry.bytes_down) == (
            "interrupted",
            INTERRUPTED_ERROR,
            None,
        )
    assert store.ledger.get(done).status == "ok"
    report = store.ledger.verify()
    assert report.ok, report.problems
    assert report.links == 6


def test_open_cloud_sessions_are_those_no_answered_close_ended(store: Store) -> None:
    def opened(session_id: str) -> int:
        entry = store.ledger.begin("u1", "logits", "/v1/sessions", "POST", b"{}")
        store.ledger.finish(entry, "ok", http_status=201, bytes_down=80, cloud_session=session_id)
        return entry

    def closed(session_id: str, status: str, http_status: int | None) -> None:
        entry = store.ledger.begin("u1", "logits", f"/v1/sessions/{session_id}", "DELETE", b"")
        store.ledger.finish(entry, status, http_status=http_status, bytes_down=0)

    left_open = opened("s-open")
    opened("s-closed")
    closed("s-closed", "ok", 204)
    opened("s-gone")
    closed("s-gone", "error", 404)
    unreachable = opened("s-unreachable")
    closed("s-unreachable", "error", None)  # the close never reached the cloud
    failed = store.ledger.begin("u1", "logits", "/v1/sessions", "POST", b"{}")
    store.ledger.finish(failed, "error", http_status=503, bytes_down=10)

    found = store.ledger.open_cloud_sessions()
    assert [(s.session_id, s.opened_entry, s.mode) for s in found] == [
        ("s-open", left_open, "logits"),
        ("s-unreachable", unreachable, "logits"),
    ]


def test_a_session_left_open_is_closed_when_the_edge_starts(
    store: Store, cloud_app: CloudApp
) -> None:
    with cloud_app.serving():
        cloud = client(store, cloud_app.url)
        session_id = open_session(cloud)
        assert cloud_app.open_sessions() == 1

        closer = recover(store, cloud)  # the edge stopped here and starts again
        assert [s.session_id for s in closer.pending] == [session_id]
        closer.close_pending()

        assert closer.pending == []
        assert cloud_app.open_sessions() == 0
        assert closes(store, session_id) == [("ok", 204)]
        assert store.ledger.open_cloud_sessions() == []
        assert store.ledger.verify().ok


def test_a_session_is_closed_once_the_cloud_can_be_reached_again(
    store: Store, cloud_app: CloudApp
) -> None:
    with cloud_app.serving():
        session_id = open_session(client(store, cloud_app.url))
    # The cloud is down while the edge starts: the closer keeps trying in the background.
    closer = recover(store, client(store, cloud_app.url), retry_s=0.2)
    closer.start()
    try:
        wait_for(lambda: len(closes(store, session_id)) >= 2)
        assert set(closes(store, session_id)) == {("error", None)}
        assert [s.session_id for s in closer.pending] == [session_id]

        with cloud_app.serving():
            wait_for(lambda: not closer.pending, timeout_s=60)
            assert cloud_app.open_sessions() == 0
    finally:
        closer.stop()
    assert closes(store, session_id)[0] == ("ok", 204)
    assert store.ledger.open_cloud_sessions() == []
    assert store.ledger.verify().ok


def test_a_session_the_cloud_already_ended_is_not_retried(
    store: Store, cloud_app: CloudApp
) -> None:
    with cloud_app.serving():
        cloud = client(store, cloud_app.url)
        session_id = open_session(cloud)
        # e.g. expired while the edge was down (sessions belong to the token's tenant)
        cloud_app.app.state.sessions.close(session_id, owner=DEFAULT_TENANT)

        closer = recover(store, cloud)
        closer.close_pending()

    assert closer.pending == []
    assert closes(store, session_id) == [("error", 404)]
    assert store.ledger.open_cloud_sessions() == []
