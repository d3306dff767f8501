"""Session KV reuse gives the same top-k as a fresh evaluation of the same tokens."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cloud_service.engines.base import top_k_logprobs
from cloud_service.testing import RunningCloud as Cloud

pytestmark = pytest.mark.slow  # the real model behind a real server

ATOL = 1e-3


def assert_same_top_k(got: dict, want: dict) -> None:
    assert got["token_ids"] == want["token_ids"]
    np.testing.assert_allclose(got["logprobs"], want["logprobs"], atol=ATOL)


def run_script(cloud: Cloud, prompt: list[int], top_k: int = 8) -> list[tuple[list[int], dict]]:
    """Appends, accepted and rejected drafts; returns (tokens before, top-k) per position."""
    opened = cloud.open(prompt_token_ids=prompt, top_k=top_k)
    sid, committed = opened["session_id"], list(prompt)
    seen = [(list(committed), opened["next"])]

    def step(accept: int, append: list[int], draft: list[int], prev_draft: list[int]) -> list:
        nonlocal committed
        out = cloud.step(sid, accept=accept, append=append, draft=draft)
        committed = committed + prev_draft[:accept] + append
        assert out["session_tokens"] == len(committed)
        assert len(out["positions"]) == len(draft) + 1
        for i, position in enumerate(out["positions"]):
            seen.append((committed + draft[:i], position))
        return out["positions"]

    best = opened["next"]["token_ids"]
    pos = step(0, [best[0]], [best[1], best[0], 198], [])  # append 1, draft 3
    d1 = [best[1], best[0], 198]
    pos = step(2, [pos[2]["token_ids"][1]], [pos[0]["token_ids"][0]], d1)  # accept 2 of 3
    d2 = [pos[0]["token_ids"][0]]
    step(0, [], [], d2)  # reject the whole draft, append nothing: no recompute
    step(0, [], [504, 28, 9], [])  # draft only
    step(3, [], [], [504, 28, 9])  # accept all, nothing new
    step(0, [11, 12, 13, 14, 15], [16, 17], [])  # append several, draft
    step(1, [1], [], [16, 17])  # accept 1 then append a special token
    cloud.close(sid)
    return seen


def test_session_steps_match_fresh_full_evaluations(cloud: Cloud, prompt_tokens: list[int]) -> None:
    for tokens, position in run_script(cloud, prompt_tokens):
        assert_same_top_k(position, cloud.fresh_next(tokens, top_k=8))


def test_rejected_draft_is_rewound(cloud: Cloud, prompt_tokens: list[int]) -> None:
    opened = cloud.open(prompt_token_ids=prompt_tokens, top_k=5)
    sid = opened["session_id"]
    cloud.step(sid, draft=[300, 301, 302, 303])
    # Keep one drafted token, drop three, append a different one.
    out = cloud.step(sid, accept=1, append=[504], draft=[28])
    assert out["session_tokens"] == len(prompt_tokens) + 2
    assert_same_top_k(out["positions"][0], cloud.fresh_next([*prompt_tokens, 300, 504], 5))
    assert_same_top_k(out["positions"][1], cloud.fresh_next([*prompt_tokens, 300, 504, 28], 5))
    # Rejecting everything, with nothing appended, answers from the committed tokens.
    out = cloud.step(sid, accept=0)
    assert_same_top_k(out["positions"][0], cloud.fresh_next([*prompt_tokens, 300, 504], 5))
    cloud.close(sid)


def test_step_top_k_override_returns_a_prefix_of_the_larger_list(
    cloud: Cloud, prompt_tokens: list[int]
) -> None:
    sid = cloud.open(prompt_token_ids=prompt_tokens, top_k=3)["session_id"]
    small = cloud.step(sid, draft=[504])["positions"]
    large = cloud.step(sid, accept=0, draft=[504], top_k=12)["positions"]
    assert [len(p["token_ids"]) for p in small + large] == [3, 3, 12, 12]
    assert large[1]["token_ids"][:3] == small[1]["token_ids"]
    cloud.close(sid)


def test_text_prompt_uses_the_models_chat_template(cloud: Cloud, prompt_tokens: list[int]) -> None:
    opened = cloud.open(prompt="Write a haiku about the sea.", system="Be brief.", top_k=5)
    assert opened["prompt_tokens"] == len(prompt_tokens)
    assert_same_top_k(opened["next"], cloud.fresh_next(prompt_tokens, 5))
    cloud.close(opened["session_id"])


def test_logprobs_are_normalized_and_sorted(cloud: Cloud, prompt_tokens: list[int]) -> None:
    top = cloud.fresh_next(prompt_tokens, top_k=20)
    logprobs = np.array(top["logprobs"])
    assert np.all(np.diff(logprobs) <= 0) and np.all(logprobs <= 0)
    assert 0.0 < np.exp(logprobs).sum() <= 1.0 + 1e-6
    row = top_k_logprobs(np.array([0.0, 2.0, 2.0, -1.0], dtype=np.float32), 3)
    assert row.token_ids == (1, 2, 0)  # ties break on the lower id
    total = np.log(np.exp([0.0, 2.0, 2.0, -1.0]).sum())
    np.testing.assert_allclose(row.logprobs, [2.0 - total, 2.0 - total, -total])


def _scripts(prompt: list[int]) -> list[list[dict]]:
    a = [{"append": [504], "draft": [28, 9]}, {"accept": 1, "append": [11]}, {"draft": [198]}]
    b = [{"draft": [300, 301]}, {"accept": 2, "append": [5, 6, 7]}, {"accept": 0, "draft": [8]}]
    return [a * 2, b * 2]


def _run(cloud: Cloud, prompt: list[int], steps: list[dict], barrier=None) -> list[dict]:
    sid = cloud.open(prompt_token_ids=prompt, top_k=6)["session_id"]
    results = []
    for body in steps:
        if barrier is not None:
            barrier.wait(timeout=30)  # force the two sessions to alternate
        results.append(cloud.step(sid, **body)["positions"])
    cloud.close(sid)
    return results


def _prompts(cloud: Cloud) -> list[list[int]]:
    chat = cloud.engine.chat_prompt_tokens
    return [chat("Be brief.", "Write a haiku."), chat("Be brief.", "List three fruits.")]


def _assert_same_runs(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert len(got) == len(want)
    for got_step, want_step in zip(got, want, strict=True):
        for g, w in zip(got_step, want_step, strict=True):
            assert_same_top_k(g, w)


def test_two_sessions_from_two_threads_match_serial_runs(cloud: Cloud) -> None:
    prompts = _prompts(cloud)
    scripts = _scripts(prompts[0])
    serial = [_run(cloud, p, s) for p, s in zip(prompts, scripts, strict=True)]
    barrier = threading.Barrier(2)
    parallel: list = [None, None]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            parallel[i] = _run(cloud, prompts[i], scripts[i], barrier)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for got, want in zip(parallel, serial, strict=True):
        _assert_same_runs(got, want)


@pytest.fixture
def one_saved_state(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloud.engine, "max_saved_states", 1)


def test_evicted_sessions_resume_with_the_same_results(cloud: Cloud, one_saved_state) -> None:
    prompts = [*_prompts(cloud), cloud.engine.chat_prompt_tokens("Be brief.", "Name a color.")]
    steps = [{"append": [504], "draft": [28, 9]}, {"accept": 1, "append": [11], "draft": [7]}]
    serial = [_run(cloud, p, steps) for p in prompts]
    sids = [cloud.open(prompt_token_ids=p, top_k=6)["session_id"] for p in prompts]
    rounds = [[cloud.step(sid, **body)["positions"] for sid in sids] for body in steps]
    # Three sessions, room for one saved state: every switch restored or re-evaluated.
    assert len(cloud.engine.saved_keys) <= 1
    for i, sid in enumerate(sids):
        _assert_same_runs([r[i] for r in rounds], serial[i])
        cloud.close(sid)
    assert not set(sids) & set(cloud.engine.saved_keys)
