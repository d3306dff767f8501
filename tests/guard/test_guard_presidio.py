"""What Presidio catches, the three policies, and the ledger record."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from edge_agent.guard import PayloadBlocked, PrivacyGuard, UnknownPolicy
from edge_agent.guard.engine import build_analyzer

CONTACT = "Please call John Smith at 212-555-0199 or write to john.smith@example.com today."


def test_presidio_finds_person_email_and_phone(guard: PrivacyGuard) -> None:
    result = guard.inspect(CONTACT)

    assert result.text == (
        "Please call <PERSON> at <PHONE_NUMBER> or write to <EMAIL_ADDRESS> today."
    )
    assert result.counts() == {"PERSON": 1, "PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1}
    assert {f.source for f in result.findings} == {"presidio"}
    assert not result.blocked and result.policy == "redact"


def test_overlapping_findings_become_one_placeholder(guard: PrivacyGuard) -> None:
    # Presidio reports the e-mail address, and URLs inside it ("example.com").
    result = guard.inspect("Mail jane.doe@example.com")

    assert result.text == "Mail <EMAIL_ADDRESS>"
    assert [f.entity_type for f in result.findings] == ["EMAIL_ADDRESS"]


def test_findings_point_into_the_original_text(guard: PrivacyGuard) -> None:
    result = guard.inspect(CONTACT)

    spans = {f.entity_type: CONTACT[f.start : f.end] for f in result.findings}

    assert spans == {
        "PERSON": "John Smith",
        "PHONE_NUMBER": "212-555-0199",
        "EMAIL_ADDRESS": "john.smith@example.com",
    }


def test_block_policy_reports_that_the_text_must_not_leave(guard: PrivacyGuard) -> None:
    result = guard.inspect(CONTACT, policy="block")

    assert result.blocked and result.text == ""
    assert all(f.replaced_with is None for f in result.findings)
    with pytest.raises(PayloadBlocked, match="1 PERSON"):
        result.raise_if_blocked()


def test_block_policy_lets_clean_text_through(guard: PrivacyGuard) -> None:
    clean = "Write a short poem about autumn leaves."

    result = guard.inspect(clean, policy="block")

    assert not result.blocked and result.text == clean and result.findings == []
    result.raise_if_blocked()


def test_off_policy_passes_everything_through(guard: PrivacyGuard) -> None:
    result = guard.inspect(CONTACT, policy="off")

    assert result.text == CONTACT and result.findings == [] and not result.blocked


def test_an_unknown_policy_is_refused(guard: PrivacyGuard) -> None:
    with pytest.raises(UnknownPolicy, match="use one of redact, block, off"):
        guard.inspect(CONTACT, policy="maybe")


def test_the_ledger_record_is_json_without_the_private_text(guard: PrivacyGuard) -> None:
    record = guard.inspect(CONTACT).to_record()

    dumped = json.dumps(record)
    for secret in ("John", "Smith", "555-0199", "john.smith", "example.com"):
        assert secret not in dumped
    finding = record["findings"][0]
    assert set(finding) == {
        "entity_type",
        "source",
        "start",
        "end",
        "length",
        "digest",
        "replaced_with",
    }
    assert len(finding["digest"]) == 8 and record["counts"]["PERSON"] == 1


def test_task_headings_are_not_taken_for_names(guard: PrivacyGuard) -> None:
    # spaCy's small model tags title-cased task words and "AI" as names and places.
    heading = (
        "Draft a Grant Proposal: Outline the budget for the AI lab. "
        "Detail the Event Flyer Text and the Email Response."
    )

    result = guard.inspect(heading)

    assert result.findings == [] and result.text == heading


def test_empty_text_is_fine(guard: PrivacyGuard) -> None:
    assert guard.inspect("").text == ""
    assert guard.inspect("   ").findings == []


def test_presidio_makes_no_network_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # a DNS lookup is a network call too
    # Make tldextract forget any public suffix list it cached, so it would have to fetch one.
    import tldextract.tldextract as tld
    from tldextract.cache import DiskCache

    monkeypatch.setattr(tld.TLD_EXTRACTOR, "_extractor", None)
    monkeypatch.setattr(tld.TLD_EXTRACTOR, "_cache", DiskCache(str(tmp_path)))

    offline = PrivacyGuard(analyzer=build_analyzer())  # loaded with the network off, too
    result = offline.inspect(
        "Mail jane.doe@example.co.uk or read https://www.example.org/about/team today."
    )

    assert set(result.counts()) == {"EMAIL_ADDRESS", "URL"}
    assert attempts == []
