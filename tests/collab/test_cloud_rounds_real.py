"""Cloud-drafted rounds on the real models: SmolLM2 on the device and behind a real
cloud server that proposes. The answer is the step-by-step one, greedy and seeded."""

from __future__ import annotations

import json

import pytest

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.outbound import CloudUsage
from shared_protocol import PROPOSE_CAPABILITY
from tests.collab.test_logits_real import (  # noqa: F401 - fixtures
    COPY_SYSTEM,
    COPY_TASK,
    PROMPTS,
    _prompts,
    cloud,
    edge_model,
    engine,
)

pytestmark = pytest.mark.slow


class ExactSteps:
    """The small model evaluating every single token batch-invariantly (with the token
    before it), as cloud rounds make the loop do: the step-by-step reference for them."""

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def append(self, tokens):
        return self._model.append_exact(tokens)[-1]


def _run(model, client, private, public, n, drafter, matcher=None, **kw):
    model.start(private)
    options = LogitsOptions(
        draft_tokens=n, max_tokens=kw.pop("max_tokens", 32), drafter=drafter, **kw
    )
    link = CloudLink(client, "u-test", CloudUsage(), can_propose=True)
    return LogitsLoop(
        model,
        PrivatePrompt.uncached(private),
        PublicPrompt(text=public),
        options,
        cloud=link,
        matcher=matcher,
    ).run()


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "top_p": 0.95, "seed": 7}])
def test_cloud_and_auto_rounds_equal_step_by_step_on_real_models(edge_model, cloud, sampling):
    client, _, ledger = cloud
    assert PROPOSE_CAPABILITY in client.info().capabilities
    private, public = _prompts(edge_model, *PROMPTS[0])
    step = _run(
        ExactSteps(edge_model), client, private, public, 0, "edge", lookahead=False, **sampling
    )
    assert step.generated_tokens >= 24 and not step.degraded
    for drafter in ("cloud", "auto"):
        got = _run(edge_model, client, private, public, 8, drafter, **sampling)
        assert got.tokens == step.tokens, f"{drafter}: {got.text!r} != {step.text!r}"
        assert got.rounds["cloud"] > 0 and got.proposed > 0 and not got.degraded
    assert not any(b"Ribeiro" in p for p in ledger.payloads)


def test_cloud_rounds_keep_prefix_redaction_on_real_models(edge_model, cloud):
    from edge_agent.guard.matcher import TermMatcher
    from edge_agent.guard.terms import location_terms, name_terms

    client, _, ledger = cloud
    matcher = TermMatcher(
        name_terms("Ana Ribeiro")
        + name_terms("Rosalind Kettering")
        + location_terms("Lisbon, Portugal")
    )
    private = _prompts(edge_model, COPY_SYSTEM, COPY_TASK)[0]
    public = "Write a thank-you note to Aunt <PERSON> for the soup."
    step = _run(
        ExactSteps(edge_model), client, private, public, 0, "edge", matcher, lookahead=False
    )
    assert "Rosalind" in step.text and step.redacted_spans >= 1
    start = len(ledger.payloads)
    got = _run(edge_model, client, private, public, 8, "cloud", matcher)
    assert got.tokens == step.tokens and got.held_back_steps == step.held_back_steps
    assert got.rounds["cloud"] > 0 and got.redacted_spans == step.redacted_spans
    # What the edge sent (most of the answer reaches the cloud as accepted proposals).
    sent = [json.loads(p) for p in ledger.payloads[start:] if p]
    ids = [t for body in sent for t in body.get("append", []) + body.get("draft", [])]
    cloud_text = edge_model.detokenize(ids).decode("utf-8", errors="replace")
    assert "Rosalind" not in cloud_text
    assert not any(b"Rosalind" in p or b"Ribeiro" in p for p in ledger.payloads[start:])
