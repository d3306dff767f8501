"""``ledger verify``: stored payloads re-scanned against the current profile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.guard import PrivacyGuard
from edge_agent.guard.verify import verify_ledger
from edge_agent.store import Store, open_store
from edge_agent.store.schemas import ProfileIn, ProfileUpdate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'edge.db'}") as opened:
        yield opened


def sketch_payload(instruction: str) -> bytes:
    return json.dumps({"protocol_version": "2", "instruction": instruction}).encode()


def test_verify_finds_what_is_private_now_in_what_left_before(
    store: Store, guard: PrivacyGuard
) -> None:
    user = store.profiles.create_user(ProfileIn(name="Dana Whitfield", location="Portland"))
    leaked = store.ledger.begin(
        user.id, "sketch", "/v1/sketch", "POST", sketch_payload("Thank my rowing club crew.")
    )
    store.ledger.begin(
        user.id, "sketch", "/v1/sketch", "POST", sketch_payload("Write a poem about rain.")
    )
    store.ledger.begin("u_gone", "sketch", "/v1/sketch", "POST", sketch_payload("Dana"))
    store.ledger.begin(None, "sketch", "/v1/info", "GET", b"")

    clean = verify_ledger(store, guard=guard)
    store.profiles.update_user(
        user.id, ProfileUpdate(private_information="Captain of a rowing club crew on weekends")
    )
    after = verify_ledger(store, guard=guard)

    assert (clean.entries, clean.hits, clean.skipped) == (2, [], 2)
    assert [(h.entry_id, h.kind) for h in after.hits] == [(leaked, "PRIVATE")]
    assert after.hits[0].description == "'rowing club crew' matches Privacy_info in instruction"


def test_verify_can_check_one_user(store: Store, guard: PrivacyGuard) -> None:
    dana = store.profiles.create_user(ProfileIn(name="Dana Whitfield"))
    other = store.profiles.create_user(ProfileIn(name="Ben Ortiz"))
    store.ledger.begin(dana.id, "sketch", "/v1/sketch", "POST", sketch_payload("From Dana"))
    store.ledger.begin(other.id, "sketch", "/v1/sketch", "POST", sketch_payload("From Ben"))

    report = verify_ledger(store, user_id=other.id, guard=guard, page_size=1)

    assert report.entries == 1
    assert [(h.user_id, h.hit.text) for h in report.hits] == [(other.id, "Ben")]
