"""What the privacy page computes from ledger rows: highlighted placeholders, findings by
type, statuses, totals and the chart's layout."""

from __future__ import annotations

from datetime import date

from edge_agent.page.sessions import PageSessions
from edge_agent.page.view import (
    bytes_up_chart,
    findings_by_type,
    human_bytes,
    payload_segments,
    status_of,
    totals_by,
)
from edge_agent.store import Store
from edge_agent.store.ledger import LedgerTotal


def test_placeholders_are_cut_out_of_the_exact_payload() -> None:
    text = '{"task":"a toast for <PERSON> in <LOCATION>","x":"<b> a<1>"}'
    segments = payload_segments(text)
    assert "".join(s.text for s in segments) == text
    assert [s.text for s in segments if s.placeholder] == ["<PERSON>", "<LOCATION>"]
    assert payload_segments("") == []


def test_findings_are_counted_by_type_in_every_recorded_shape() -> None:
    records = [{"entity_type": "PERSON"}, {"entity_type": "LOCATION"}, {"entity_type": "PERSON"}]
    assert findings_by_type(records) == {"LOCATION": 1, "PERSON": 2}
    assert findings_by_type({"findings": records}) == {"LOCATION": 1, "PERSON": 2}
    assert findings_by_type({"counts": {"PRIVATE": 3}}) == {"PRIVATE": 3}
    assert findings_by_type(None) == {} and findings_by_type("junk") == {}


def test_statuses_say_what_happened(store: Store) -> None:
    ok = store.ledger.begin("u", "sketch", "/v1/sketch", "POST", b"{}")
    store.ledger.finish(ok, "ok", http_status=200, bytes_down=3)
    failed = store.ledger.begin("u", "logits", "/v1/sessions", "POST", b"{}")
    store.ledger.finish(failed, "error", error="cloud unreachable: refused")
    stuck = store.ledger.begin("u", "logits", "/v1/sessions/s/step", "POST", b"{}")
    store.ledger.mark_interrupted()

    labels = [status_of(store.ledger.get(i)) for i in (ok, failed, stuck)]
    assert [s.css for s in labels] == ["ok", "degraded", "interrupted"]
    assert labels[1].label == "degraded: cloud unreachable"
    assert "unknown" in labels[2].explanation


def test_totals_per_day_and_mode_and_the_chart(store: Store) -> None:
    totals = [
        LedgerTotal(date(2025, 1, 1), "sketch", 2, 300, 2000),
        LedgerTotal(date(2025, 1, 1), "logits", 10, 1200, 9000),
        LedgerTotal(date(2025, 1, 3), "sketch", 1, 150, 1000),
    ]
    by_day = totals_by(totals, "day")
    assert [(t.key, t.calls, t.bytes_up) for t in by_day] == [
        ("2025-01-03", 1, 150),
        ("2025-01-01", 12, 1500),
    ]
    by_mode = totals_by(totals, "mode")
    assert [(t.key, t.bytes_up, t.bytes_down) for t in by_mode] == [
        ("logits", 1200, 9000),
        ("sketch", 450, 3000),
    ]

    chart = bytes_up_chart(totals)
    assert chart is not None
    assert len(chart.bars) == 3  # Jan 1, 2 (nothing sent) and 3
    tallest, empty, small = chart.bars
    assert empty.height == 0 and tallest.height == 10 * small.height > 0
    assert tallest.title == "2025-01-01: 1.5 kB up in 12 calls"
    assert "1.6 kB in all" in chart.summary
    assert bytes_up_chart([]) is None


def test_the_ledgers_own_totals_match_its_rows(store: Store) -> None:
    for payload in (b"abc", b"defgh"):
        entry = store.ledger.begin("u1", "sketch", "/v1/sketch", "POST", payload)
        store.ledger.finish(entry, "ok", http_status=200, bytes_down=10)
    store.ledger.begin("u2", "logits", "/v1/sessions", "POST", b"x")

    (mine,) = store.ledger.totals("u1")
    assert (mine.mode, mine.calls, mine.bytes_up, mine.bytes_down) == ("sketch", 2, 8, 20)
    assert sum(t.calls for t in store.ledger.totals()) == 3


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (None, 0, 999, 1000, 1_234_567)] == [
        "?",
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
    ]


def test_page_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    sessions = PageSessions[str](idle_timeout_s=10, max_sessions=2, clock=lambda: now[0])
    first = sessions.start("ada")
    assert sessions.get(first.id) is first and first.csrf_ok(first.csrf)
    assert not first.csrf_ok("forged") and not first.csrf_ok(None)
    now[0] = 11
    assert sessions.get(first.id) is None  # idle too long
    second, third, fourth = sessions.start("a"), sessions.start("b"), sessions.start("c")
    assert sessions.get(second.id) is None  # the oldest went first
    assert sessions.get(third.id) is third and sessions.get(fourth.id) is fourth
    sessions.end_where(lambda who: who == "b")
    assert sessions.get(third.id) is None and sessions.get(None) is None
