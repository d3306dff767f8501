"""Canaries across every mode and guard policy, on real servers.

A profile carries a unique canary in every field and in the writing history; the task's
title names private items (so the title alone would leak them without the guard). The
cloud records every body it receives; what it could read is those bodies plus the text
rebuilt from the token ids each session was sent (appended and drafted, in order, so a
canary split across calls is still found). Policy "off" is for experiments: there the
tests assert what does leak, which also proves the detector works.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from edge_agent.guard.result import merge_spans, redact
from edge_agent.store.context import UserContext
from tests.edge.test_chat import client_for

# Fixed (not random) so spaCy's reading of the history, and the answers, are reproducible;
# each test has its own database, so the same profile never collides.
TAG = "qkzv"


@dataclass(frozen=True)
class Planted:
    body: dict
    protected: dict[str, str]  # field -> canary the guard knows as (part of) a private term
    public: dict[str, str]  # field -> canary in an open field (never in the task)

    @property
    def all(self) -> list[str]:
        return [*self.protected.values(), *self.public.values()]


def planted_profile(tag: str = TAG) -> Planted:
    def c(field: str) -> str:
        return f"Qz{field}{tag}"

    aunt = f"Rosalind Kettering{tag}"
    # The diary entry is worded so that spaCy reads the aunt as a PERSON (she becomes a
    # profile term); the letters show the small model how she is greeted.
    diary = f"My aunt {aunt} visited the lighthouse today. I told {aunt} about the storm."
    letter = f"Dear Aunt {aunt}, thank you for the lovely evening. Fondly, Velma"
    body = {
        "name": f"Velma {c('name')}",
        "age": f"38 {c('age')}",
        "occupation": f"Lighthouse keeper at {c('occupation')} Point",
        "location": f"{c('loc')}ville, Maine",
        "personal_traits": f"Patient; collects {c('traits')} stamps",
        "writing_style": f"Dry humour; signs off with {c('style')}",
        "private_information": f"Owes money to {c('private')} Lending; allergic to "
        f"{c('allergy')} pollen",
        "smart_device_usage": f"Synced sleep data with Dr. Amberleigh Stroud{tag}",
        "assistant_usage": f"Drafts letters to {c('assistant')}",
        "extra": {"pet": f"a parrot named {c('pet')}"},
        "history": [
            {"title": f"Letter to {c('histtitle')}", "text": letter},
            {"title": "Diary", "text": diary},
            {"title": "Thank-you letter", "text": letter},
        ],
    }
    protected = {
        "Name": c("name"),
        "Location": f"{c('loc')}ville",
        "Privacy_info": c("private"),
        "Privacy_info (allergy)": c("allergy"),
        "Smart_device_usage": f"Stroud{tag}",
        "history": f"Kettering{tag}",
    }
    public = {
        "Age": c("age"),
        "Occupation": c("occupation"),
        "Personal_traits": c("traits"),
        "Writing_style": c("style"),
        "Ai_assistant_usage": c("assistant"),
        "extra": c("pet"),
        "history title": c("histtitle"),
    }
    return Planted(body, protected, public)


PLANTED = planted_profile()
P = PLANTED.protected
# The title (before ": ") names the user, their town, a private item and a person from
# their letters: without the guard all four would leave in sketch and logits mode.
TASK = (
    f"Write a note from Velma {P['Name']} of {P['Location']} to Aunt Rosalind {P['history']} "
    f"about my {P['Privacy_info (allergy)']} pollen allergy: thank her for the soup."
)
TITLE_CANARIES = [P["Name"], P["Location"], P["history"], P["Privacy_info (allergy)"]]
# The hard case: the small model greets the aunt by name, copying it from the task and
# the letters, so in logits mode her name would reach the cloud as token ids.
COPY_TASK = f"Write a thank-you note to Aunt Rosalind {P['history']}: thank her for the soup."


@pytest.fixture
def user(edge) -> str:
    reply = edge.http.post(f"{edge.url}/v1/profiles", json=PLANTED.body, timeout=60)
    assert reply.status_code == 201, reply.text
    user_id = reply.json()["id"]
    ctx = edge.services.store.profiles.load_context(user_id)
    _assert_guard_knows_the_protected_canaries(edge, ctx)
    return user_id


def _assert_guard_knows_the_protected_canaries(edge, ctx: UserContext) -> None:
    """The profile terms cover each protected canary where it was planted; if spaCy
    stopped reading one as a name, these tests would prove nothing."""
    matcher = edge.services.guard.matcher_for(ctx)  # profile terms only, no Presidio
    planted = [ctx.fields[f.split(" ")[0]] for f in PLANTED.protected if f != "history"]
    planted += [text for _title, text in ctx.history]
    covered = " ".join(redact(text, merge_spans(matcher.find(text))) for text in planted)
    assert leaked(covered, list(PLANTED.protected.values())) == []


@dataclass
class Sent:
    bodies: list[bytes]  # what the cloud received during the request (non-empty bodies)
    readable: str  # bodies + text rebuilt from token ids
    report: dict
    text: str
    ledger: list[dict]  # the edge's ledger entries for the user


def chat(edge, cloud, user: str, mode: str, task: str, **options) -> Sent:
    before = _records(cloud)
    reply = client_for(edge).chat.completions.create(
        model=mode,
        user=user,
        max_tokens=24,
        messages=[{"role": "user", "content": task}],
        extra_body={"cogenesis": {"draft_tokens": 4, **options}},
    )
    received = _records(cloud)[len(before) :]
    ledger = edge.http.get(f"{edge.url}/v1/ledger", params={"user": user, "limit": 500}).json()
    return Sent(
        bodies=[r["body"] for r in received if r["body"]],
        readable=_readable(edge, received),
        report=reply.model_extra["cogenesis"],
        text=reply.choices[0].message.content,
        ledger=ledger["data"],
    )


def _records(cloud) -> list[dict]:
    if not cloud.received.exists():
        return []
    rows = [json.loads(line) for line in cloud.received.read_text().splitlines() if line]
    return [{"path": r.get("path", ""), "body": bytes.fromhex(r["body_hex"])} for r in rows]


def _readable(edge, received: list[dict]) -> str:
    """Everything the cloud could read: the bodies, and per session the text of all the
    token ids it was sent, decoded as one sequence."""
    parts, sessions = [], {}
    for record in received:
        parts.append(record["body"].decode("utf-8", errors="replace"))
        try:
            message = json.loads(record["body"])
        except ValueError:
            continue
        ids = message.get("append", []) + message.get("draft", [])
        sessions.setdefault(record["path"], []).extend(ids)
        sessions.setdefault(record["path"] + "#prompt", []).extend(
            message.get("prompt_token_ids", [])
        )
    with edge.services.pool.acquire() as slm:
        for ids in sessions.values():
            parts.append(slm.detokenize(ids).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def leaked(text: str, canaries: list[str]) -> list[str]:
    return [c for c in canaries if c.casefold() in text.casefold()]


def assert_guard_records(sent: Sent, policy: str) -> None:
    """Every ledger entry that carried bytes names the policy; no finding holds private
    text (types, offsets, lengths and digests only)."""
    assert sent.ledger, "the request reached the ledger"
    for entry in sent.ledger:
        if entry["payload"]:
            assert entry["guard_policy"] == policy, entry["endpoint"]
        assert leaked(json.dumps(entry["guard_findings"]), PLANTED.all) == []


MODES = ["local", "cogenesis-sketch", "cogenesis-logits"]
SENT_TITLE_TO = ("/v1/sketch", "/v1/sketch/stream", "/v1/sessions")  # the calls with a title
POLICIES = ["redact", "block", "off"]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_policy(edge, cloud, user, mode, policy) -> None:
    sent = chat(edge, cloud, user, mode, TASK, guard_policy=policy)
    report = sent.report
    assert report["guard_policy"] == policy and sent.text.strip()
    if mode == "local":
        # Nothing leaves the device in local mode, whatever the policy.
        assert sent.bodies == [] and sent.ledger == [] and report["bytes_up"] == 0
        return
    if policy == "block":
        # The title names private details: nothing is sent, the device answers alone.
        assert sent.bodies == [] and sent.ledger == []
        assert report["degraded"] and "blocked by the privacy guard" in report["degraded_reason"]
        assert report["guard"]["blocked"] and len(report["guard"]["findings"]) >= 4
        assert leaked(json.dumps(report["guard"]), PLANTED.all) == []
        return
    assert not report["degraded"], report.get("degraded_reason")
    assert_guard_records(sent, policy)
    raw = "\n".join(b.decode("utf-8", errors="replace") for b in sent.bodies)
    if policy == "redact":
        assert leaked(sent.readable, PLANTED.all) == []
        # Numbered placeholders, the same value always the same one within the request.
        assert re.search(r"<(PERSON|LOCATION|PRIVATE)_\d+>", raw)
        opened = next(e for e in sent.ledger if e["endpoint"] in SENT_TITLE_TO)
        assert len(opened["guard_findings"]) >= 4  # one per private item in the title
    else:  # off: the unguarded title leaves, and the detector sees it
        assert sorted(leaked(raw, TITLE_CANARIES)) == sorted(TITLE_CANARIES)
        assert all(not e["guard_findings"] for e in sent.ledger)
        # The private prompt itself never leaves, even with the guard off; only the
        # small model's copies could reach the cloud, as token ids (logits mode).
        not_in_title = [c for c in PLANTED.all if c not in TITLE_CANARIES]
        assert leaked(raw, not_in_title) == []
        if mode == "cogenesis-sketch":
            assert leaked(sent.readable, not_in_title) == []
    if mode == "cogenesis-logits":
        assert report["logits"]["prefix_redaction"] is (policy == "redact")


def test_a_copied_history_name_leaks_as_token_ids_without_prefix_redaction(
    edge, cloud, user
) -> None:
    """The hard case: the title is redacted, but the small model writes the aunt's name
    (from the task and the letters) into the answer, and the cloud learns its ids."""
    sent = chat(edge, cloud, user, "cogenesis-logits", COPY_TASK, prefix_redaction=False)
    canary = P["history"]
    assert canary in sent.text, f"the small model did not copy the name: {sent.text!r}"
    raw = "\n".join(b.decode("utf-8", errors="replace") for b in sent.bodies)
    assert leaked(raw, [canary]) == []  # not as text: the guard redacted the title
    assert leaked(sent.readable, [canary]) == [canary]  # but as token ids it did leave
    assert sent.report["logits"]["prefix_redaction"] is False


def test_prefix_redaction_keeps_the_copied_name_on_the_device(edge, cloud, user) -> None:
    sent = chat(edge, cloud, user, "cogenesis-logits", COPY_TASK)
    canary = P["history"]
    assert canary in sent.text  # the user still gets the true text
    assert leaked(sent.readable, PLANTED.all) == []
    logits = sent.report["logits"]
    assert logits["prefix_redaction"] is True
    assert logits["redacted_spans"] >= 1 and logits["held_back_steps"] >= 1
    assert not sent.report["degraded"]
    assert_guard_records(sent, "redact")
    prefix = [
        finding
        for entry in sent.ledger
        if entry["endpoint"].endswith("/step")
        for finding in entry["guard_findings"] or []
    ]
    assert prefix and all(f["where"] == "prefix" and f["digest"] for f in prefix)
    assert {f["entity_type"] for f in prefix} & {"PERSON", "ORGANIZATION"}
