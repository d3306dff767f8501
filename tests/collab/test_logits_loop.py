"""The logits-mode loop on toy models: draft-and-verify reproduces step-by-step fusion."""

from __future__ import annotations

import pytest

from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudUsage
from tests.collab.toys import EOS, ToyCloud, ToyModel

PRIVATE = [5, 6, 7, 8, 9, 10, 11]
PUBLIC = [5, 6, 7]


def _run(n_draft=0, schedule=None, cloud=None, slow=False, **kw):
    options = LogitsOptions(
        draft_tokens=n_draft,
        schedule=schedule or Schedule.every_step(),
        max_tokens=kw.pop("max_tokens", 60),
        top_k=kw.pop("top_k", 5),
        **kw,
    )
    usage = CloudUsage()
    cloud = ToyCloud(delay_s=0.003 if slow else 0.0) if cloud is None else cloud
    model = ToyModel()
    seen: list[int] = []
    result = LogitsLoop(
        model,
        PrivatePrompt.uncached(PRIVATE),
        PublicPrompt.of_tokens(PUBLIC),
        options,
        cloud=CloudLink(cloud, "u1", usage) if cloud else None,
        on_token=seen.append,
    ).run()
    assert seen == result.tokens
    return result, cloud, model


SCHEDULES = [Schedule.every_step(), Schedule(5, 10, 3), Schedule(1, 1, 1), Schedule(0, 3, 2)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
@pytest.mark.parametrize("fusion", ["mean", "max", "weighted"])
def test_greedy_draft_and_verify_equals_step_by_step(schedule, fusion):
    base, _, _ = _run(0, schedule, fusion=fusion, alpha=0.7, lookahead=False)
    assert base.generated_tokens > 10
    for n in (0, 1, 2, 4, 8, 16):
        for lookahead, min_prob in ((False, 0.0), (True, 0.0), (True, 0.05)):
            got, _, _ = _run(
                n,
                schedule,
                fusion=fusion,
                alpha=0.7,
                lookahead=lookahead,
                draft_min_prob=min_prob,
            )
            assert got.tokens == base.tokens, f"N={n}"
            assert got.finish_reason == base.finish_reason


@pytest.mark.parametrize("schedule", SCHEDULES[:2], ids=str)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sampled_draft_and_verify_equals_step_by_step_for_the_same_seed(schedule, seed):
    kw = {"temperature": 0.9, "top_p": 0.95, "seed": seed}
    base, _, _ = _run(0, schedule, lookahead=False, **kw)
    for n in (0, 1, 4, 8):
        got, _, _ = _run(n, schedule, slow=True, **kw)
        assert got.tokens == base.tokens
    assert got.seed == seed


def test_lookahead_drafts_while_a_slow_cloud_answers_and_changes_nothing():
    base, _, _ = _run(4, lookahead=False, max_tokens=40)
    model_evals = []
    for lookahead in (False, True):
        got, _, model = _run(4, slow=True, lookahead=lookahead, max_tokens=40)
        assert got.tokens == base.tokens
        model_evals.append(model.evals)
    assert model_evals[1] > model_evals[0]  # it did draft ahead


def test_the_confidence_floor_shortens_drafts_without_changing_tokens():
    fixed, _, _ = _run(8, draft_min_prob=0.0, lookahead=False)
    floor, _, _ = _run(8, draft_min_prob=0.3, lookahead=False)
    assert floor.tokens == fixed.tokens
    assert floor.drafted < fixed.drafted
    assert floor.drafted - floor.accepted < fixed.drafted - fixed.accepted


def test_different_seeds_give_different_answers():
    a, _, _ = _run(4, temperature=1.0, seed=1)
    b, _, _ = _run(4, temperature=1.0, seed=2)
    assert a.tokens != b.tokens


def test_fusion_changes_the_answer_compared_with_the_small_model_alone():
    fused, _, _ = _run(0)
    local, _, _ = _run(0, cloud=False)
    assert fused.tokens != local.tokens
    assert not local.degraded and local.cloud_calls == 0 and local.collaborated == 0


def test_drafting_saves_round_trips_and_counts_drafts():
    step, _, _ = _run(0, max_tokens=40)
    draft, _, _ = _run(8, max_tokens=40)
    assert step.cloud_calls == step.generated_tokens + 1  # open + one step per token - 1 + close
    assert draft.cloud_calls < step.cloud_calls
    assert 0 < draft.accepted <= draft.drafted
    assert draft.collaborated == draft.generated_tokens
    assert draft.bytes_up > 0 and draft.bytes_down > 0


def test_the_cloud_learns_every_token_and_the_session_is_closed():
    result, cloud, _ = _run(4, Schedule(5, 10, 3), max_tokens=50)
    committed = cloud.committed_answer("s0")
    assert result.tokens[: len(committed)] == committed
    assert cloud.closed == ["s0"]


def test_long_local_runs_are_appended_in_chunks_of_the_protocol_limit():
    result, cloud, _ = _run(0, Schedule(0, 100, 2), max_tokens=110, top_k=3)
    assert result.generated_tokens == 110 or result.finish_reason == "stop"
    assert max(len(getattr(r, "append", None) or []) for r in cloud.requests) <= 64


def test_the_edge_context_holds_exactly_prompt_plus_answer_at_the_end():
    result, _, model = _run(8)
    assert model._tokens == PRIVATE + result.tokens[:-1] or model._tokens == PRIVATE + result.tokens


@pytest.mark.parametrize("n_draft", [0, 4])
def test_cloud_failing_mid_answer_degrades_but_completes(n_draft):
    full, _, _ = _run(n_draft, max_tokens=60)
    cloud = ToyCloud(fail_after_steps=3)
    got, _, _ = _run(n_draft, cloud=cloud, max_tokens=60)
    assert got.degraded and "toy cloud is down" in got.degraded_reason
    assert got.generated_tokens > 10
    assert got.finish_reason in {"stop", "length"}
    # Everything chosen before the failure is what the healthy run chose.
    assert got.tokens[: got.collaborated] == full.tokens[: got.collaborated]
    assert cloud.closed == []  # an unreachable cloud is not called again


def test_a_cloud_down_from_the_start_gives_the_local_answer():
    local, _, _ = _run(0, cloud=False)
    down, _, _ = _run(4, cloud=ToyCloud(fail_after_steps=-1), max_tokens=60)
    assert down.degraded and down.tokens[1:] != [] and down.collaborated <= 1
    # Only the first token could have been fused (from the open reply).
    if down.collaborated == 0:
        assert down.tokens == local.tokens


def test_max_tokens_is_respected_by_drafts():
    for n in (0, 3, 8):
        result, _, _ = _run(n, max_tokens=7)
        assert result.generated_tokens <= 7


# --- prefix redaction -----------------------------------------------------------------

SYLLABLES = ["ka", "lo", "mi", "re", "su", "ta", "ne", "vo", "di", "pa", "ru", "se"]


class WordyToyModel(ToyModel):
    """A toy whose tokens read as words: every third id starts one (" ka"), others
    continue it ("lo"), and 63 is a full stop. Prefix redaction needs word boundaries."""

    def detokenize(self, ids) -> bytes:
        return "".join(_piece(t) for t in ids).encode()


def _piece(t: int) -> str:
    if t == 63:
        return "."
    syllable = SYLLABLES[t % len(SYLLABLES)]
    return f" {syllable}" if t % 3 == 0 else syllable


def _words(model, tokens) -> list[str]:
    return model.detokenize(tokens).decode().replace(".", " ").split()


def _run_redacted(n_draft, matcher, schedule=None, **kw):
    from edge_agent.outbound import GuardRecord

    options = LogitsOptions(
        draft_tokens=n_draft,
        schedule=schedule or Schedule.every_step(),
        max_tokens=60,
        top_k=5,
        **kw,
    )
    cloud, model = ToyCloud(delay_s=0.002 if kw.get("lookahead", True) else 0.0), WordyToyModel()
    guard = GuardRecord(policy="redact", findings=[])
    result = LogitsLoop(
        model,
        PrivatePrompt.uncached(PRIVATE),
        PublicPrompt.of_tokens(PUBLIC),
        options,
        cloud=CloudLink(cloud, "u1", CloudUsage(), guard=guard),
        matcher=matcher,
    ).run()
    return result, cloud, model


def _private_words(schedule=None) -> tuple[object, list[str]]:
    """A private word the redacted run will write: the first word of the plain fused
    answer whose first syllable starts no earlier word (so nothing is held before it),
    completed the way the small model alone goes on once the view holds it back."""
    from edge_agent.collab.sampling import SamplingParams, pick
    from edge_agent.guard.matcher import TermMatcher
    from edge_agent.guard.terms import Term

    plain, _, _ = _run(0, schedule, lookahead=False)
    tokens, seen = plain.tokens, set()
    for i, token in enumerate(tokens[:-8]):
        if token % 3 or token == 63:
            continue  # not a word start
        if token % len(SYLLABLES) in seen:
            continue
        seen.add(token % len(SYLLABLES))
        if i < 3:
            continue  # keep a few shared tokens in front
        model = WordyToyModel()
        model.start(PRIVATE)
        word = [token]
        lp = model.append(tokens[: i + 1])
        while True:
            nxt = pick(lp, SamplingParams(0.0, 1.0))
            if nxt == EOS or nxt % 3 == 0 or nxt == 63:
                break
            word.append(nxt)
            lp = model.append([nxt])
        text = model.detokenize(word).decode().strip()
        return TermMatcher([Term("literal", text, "PERSON", "Name")]), [text]
    raise AssertionError("no usable word in the toy answer")


@pytest.mark.parametrize("schedule", SCHEDULES[:2], ids=str)
def test_greedy_draft_and_verify_equals_step_by_step_with_prefix_redaction(schedule):
    matcher, private = _private_words(schedule)
    base, base_cloud, model = _run_redacted(0, matcher, schedule, lookahead=False)
    assert base.prefix_redaction and base.redacted_spans > 0 and base.held_back_steps > 0
    assert base.generated_tokens > 10
    # Step calls carry the redactions for the ledger: types and digests, not the text.
    records = [f for g in base_cloud.step_guards for f in g.findings]
    assert records and all(r["replaced_with"] == "<PERSON>" for r in records)
    assert not any(private[0] in str(r) for r in records)
    for n in (1, 2, 4, 8, 16):
        for lookahead, min_prob in ((False, 0.0), (True, 0.0), (True, 0.05)):
            got, cloud, _ = _run_redacted(
                n, matcher, schedule, lookahead=lookahead, draft_min_prob=min_prob
            )
            assert got.tokens == base.tokens, f"N={n}"
            assert got.held_back_steps == base.held_back_steps
            # The private words are in the answer, never in what the cloud was sent.
            sent = [
                t
                for r in cloud.requests
                for t in (getattr(r, "append", None) or []) + (getattr(r, "draft", None) or [])
            ]
            assert not set(private) & set(_words(model, sent))
    assert set(private) & set(_words(model, base.tokens))


def test_without_a_matcher_or_with_it_switched_off_nothing_is_held_back():
    matcher, _ = _private_words()
    plain, _, _ = _run(4)
    off, _, _ = _run_redacted(4, matcher, prefix_redaction=False)
    assert off.tokens == plain.tokens
    assert not off.prefix_redaction and off.held_back_steps == 0 and off.redacted_spans == 0
