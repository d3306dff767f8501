"""Logits mode on the real models: SmolLM2 on the device and behind a real cloud server."""

from __future__ import annotations

import json

import pytest

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudClient, CloudUsage
from shared_protocol import PROPOSE_CAPABILITY

pytestmark = pytest.mark.slow

CLOUD_TOKEN = "logits-real-test-token"
PROMPTS = [
    (
        "You are Ana Ribeiro, a marine biologist in Lisbon who surfs at dawn and writes "
        "short, warm posts about the ocean.",
        "Write a short blog post about your weekend.",
    ),
    (
        "You are Tom Becker, a retired train driver from Leipzig who restores old radios "
        "and writes plain, funny letters.",
        "Write a letter inviting your neighbours to a summer party.",
    ),
]


class MemoryLedger:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def begin(self, *, payload: bytes, **_: object) -> int:
        self.payloads.append(payload)
        return len(self.payloads)

    def finish(self, *_: object, **__: object) -> None:
        pass


@pytest.fixture(scope="module")
def edge_model():
    from edge_agent.slm import SmallModel
    from shared_protocol.defaults import default_gguf_path

    return SmallModel(default_gguf_path(), n_ctx=2048)


@pytest.fixture(scope="module")
def engine():
    from cloud_service.testing import shared_default_engine

    return shared_default_engine()


@pytest.fixture
def cloud(engine):
    from cloud_service.settings import CloudSettings
    from cloud_service.testing import start_cloud_server

    server = start_cloud_server(CloudSettings(token=CLOUD_TOKEN), engine=engine)
    ledger = MemoryLedger()
    client = CloudClient(server.base_url, token=CLOUD_TOKEN, ledger=ledger, retries=0, timeout_s=60)
    try:
        yield client, server, ledger
    finally:
        client.close()
        server.stop()


def _prompts(model, system: str, task: str) -> tuple[list[int], str]:
    private = model.tokenize(
        model.render_chat(
            [{"role": "system", "content": system}, {"role": "user", "content": task}]
        )
    )
    return private, task


def _run(
    model,
    client,
    private,
    public,
    n_draft,
    schedule=None,
    max_tokens=32,
    matcher=None,
    on_token=None,
    can_propose=False,
    **kw,
):
    # Same starting state for every run: without flash attention llama.cpp is not batch
    # invariant, so a prompt prefilled in one batch and one whose last token was
    # re-evaluated alone (a cache hit) give slightly different first log-probs.
    model.start(private)
    options = LogitsOptions(
        draft_tokens=n_draft,
        schedule=schedule or Schedule.every_step(),
        max_tokens=max_tokens,
        **kw,
    )
    return LogitsLoop(
        model,
        PrivatePrompt.uncached(private),
        PublicPrompt(text=public),
        options,
        cloud=CloudLink(client, "u-test", CloudUsage(), can_propose=can_propose),
        matcher=matcher,
        on_token=on_token,
    ).run()


@pytest.mark.parametrize("index", [0, 1])
def test_greedy_draft_and_verify_equals_step_by_step_on_real_models(edge_model, cloud, index):
    client, _, ledger = cloud
    private, public = _prompts(edge_model, *PROMPTS[index])
    step = _run(edge_model, client, private, public, 0, lookahead=False)
    assert step.generated_tokens >= 24 and not step.degraded
    for n in (4, 8):
        got = _run(edge_model, client, private, public, n)
        assert got.tokens == step.tokens, f"N={n}: {got.text!r} != {step.text!r}"
        assert got.cloud_calls < step.cloud_calls and not got.degraded
    # Nothing private left the device: the system prompt is never in a request body.
    assert not any(b"Ribeiro" in p or b"Becker" in p for p in ledger.payloads)


def test_greedy_equivalence_holds_on_the_paper_schedule(edge_model, cloud):
    client, _, _ = cloud
    private, public = _prompts(edge_model, *PROMPTS[0])
    base = _run(edge_model, client, private, public, 0, Schedule(5, 10, 3), max_tokens=40)
    got = _run(edge_model, client, private, public, 8, Schedule(5, 10, 3), max_tokens=40)
    assert got.tokens == base.tokens and got.collaborated < got.generated_tokens


def test_cloud_dying_mid_answer_gives_a_degraded_but_complete_answer(edge_model, cloud):
    client, server, _ = cloud
    private, public = _prompts(edge_model, *PROMPTS[1])
    healthy = _run(edge_model, client, private, public, 4, max_tokens=40)
    seen: list[int] = []

    def kill_after_ten(token: int) -> None:
        seen.append(token)
        if len(seen) == 10:
            server.stop()

    result = _run(edge_model, client, private, public, 4, max_tokens=40, on_token=kill_after_ten)
    assert result.degraded and result.degraded_reason.startswith("cloud unreachable")
    assert result.generated_tokens == 40 or result.finish_reason == "stop"
    assert result.tokens[:10] == healthy.tokens[:10]
    assert result.text.strip()


# The small model greets the aunt by name: prefix redaction has a span to replace.
COPY_SYSTEM = (
    "You are Ana Ribeiro, a marine biologist in Lisbon. "
    "Your aunt Rosalind Kettering lives in Porto."
)
COPY_TASK = "Write a thank-you note to Aunt Rosalind Kettering for the soup."


def _copy_matcher():
    from edge_agent.guard.matcher import TermMatcher
    from edge_agent.guard.terms import location_terms, name_terms

    return TermMatcher(
        name_terms("Ana Ribeiro")
        + name_terms("Rosalind Kettering")
        + location_terms("Lisbon, Portugal")
    )


def _sent_text(model, payloads):
    """The text of the token ids the edge sent in these step bodies."""
    sent = [json.loads(p) for p in payloads if p]
    ids = [t for body in sent for t in body.get("append", []) + body.get("draft", [])]
    return model.detokenize(ids).decode("utf-8", errors="replace")


def test_greedy_equivalence_holds_with_prefix_redaction(edge_model, cloud):
    client, _, ledger = cloud
    matcher = _copy_matcher()
    private = _prompts(edge_model, COPY_SYSTEM, COPY_TASK)[0]
    public = "Write a thank-you note to Aunt <PERSON> for the soup."  # the guarded title
    step = _run(edge_model, client, private, public, 0, lookahead=False, matcher=matcher)
    assert "Rosalind" in step.text  # the user's answer keeps the true name
    assert step.redacted_spans >= 1 and step.held_back_steps >= 1 and not step.degraded
    for n in (4, 8):
        start = len(ledger.payloads)
        got = _run(edge_model, client, private, public, n, matcher=matcher)
        assert got.tokens == step.tokens, f"N={n}: {got.text!r} != {step.text!r}"
        assert got.held_back_steps == step.held_back_steps
        assert got.cloud_calls < step.cloud_calls
        cloud_text = _sent_text(edge_model, ledger.payloads[start:])
        assert "Rosalind" not in cloud_text and "<PERSON>" in cloud_text


# --- rounds drafted by the cloud (the cloud server proposes) ---------------------------


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "top_p": 0.95, "seed": 7}])
def test_cloud_and_auto_rounds_equal_step_by_step_on_real_models(edge_model, cloud, sampling):
    client, _, ledger = cloud
    assert PROPOSE_CAPABILITY in client.info().capabilities
    private, public = _prompts(edge_model, *PROMPTS[0])
    step = _run(
        edge_model, client, private, public, 0, lookahead=False, batch_invariant=True, **sampling
    )
    assert step.generated_tokens >= 24 and not step.degraded
    for drafter in ("cloud", "auto"):
        got = _run(
            edge_model, client, private, public, 8, drafter=drafter, can_propose=True, **sampling
        )
        assert got.tokens == step.tokens, f"{drafter}: {got.text!r} != {step.text!r}"
        assert got.rounds["cloud"] > 0 and got.proposed > 0 and not got.degraded
    assert not any(b"Ribeiro" in p for p in ledger.payloads)


def test_cloud_rounds_keep_prefix_redaction_on_real_models(edge_model, cloud):
    client, _, ledger = cloud
    matcher = _copy_matcher()
    private = _prompts(edge_model, COPY_SYSTEM, COPY_TASK)[0]
    public = "Write a thank-you note to Aunt <PERSON> for the soup."
    step = _run(
        edge_model,
        client,
        private,
        public,
        0,
        matcher=matcher,
        lookahead=False,
        batch_invariant=True,
    )
    assert "Rosalind" in step.text and step.redacted_spans >= 1
    start = len(ledger.payloads)
    got = _run(
        edge_model, client, private, public, 8, matcher=matcher, drafter="cloud", can_propose=True
    )
    assert got.tokens == step.tokens and got.held_back_steps == step.held_back_steps
    assert got.rounds["cloud"] > 0 and got.redacted_spans == step.redacted_spans
    # What the edge sent (most of the answer reaches the cloud as accepted proposals).
    cloud_text = _sent_text(edge_model, ledger.payloads[start:])
    assert "Rosalind" not in cloud_text
    assert not any(b"Rosalind" in p or b"Ribeiro" in p for p in ledger.payloads[start:])
