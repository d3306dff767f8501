"""Sketch mode against local-only generation, on dev-set tasks, in one run.

Both ends run for real on loopback (cloud service and edge agent, SmolLM2 on each).
For each task it measures, through the edge's HTTP endpoint:
  - sketch: cloud sketch time, edge fill time, total;
  - local: the small model alone with the same token budget;
  - time to first token in sketch mode for a cold user (nothing of theirs cached on the
    edge), with the outline streamed and the private prompt evaluated as it arrives,
    and without (the sequential path: the whole outline, then the whole prefill), and
    for a returning user (streamed);
  - of each, the part after the outline's end (the last point, its done event) up to
    the first answer token: what the edge controls.
Times are reported as ratios against local-only measured in the same run. Every request
uses the run's --max-tokens (it sets the private prompt's budget). The outline's length
does not depend on it: the edge asks for at most ``sketch_max_tokens`` (a setting).

    python -m bench.sketch [DATASET.json] [--tasks 20] [--max-tokens 128] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from tqdm import tqdm

from bench import DEFAULT_DATASET, RESULTS
from bench.harness import BothEnds, both_ends, load_tasks, record_user_id
from cloud_service.settings import CloudSettings
from edge_agent.services import EdgeServices

TOKEN = "bench-token"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="edge-cloud round trip")
    parser.add_argument("--out", type=Path, default=RESULTS / "sketch.json")
    args = parser.parse_args()

    records = load_tasks(args.dataset, args.tasks, "sketch")
    users = {r.get("tid"): record_user_id(r) for r in records}
    work = Path(tempfile.mkdtemp(prefix="bench-sketch-"))
    settings = CloudSettings(token=TOKEN)
    with both_ends(records, work, settings, rtt_ms=args.rtt_ms, max_tokens=args.max_tokens) as ends:
        rows = run(ends, records, users, args.max_tokens)
    summary = {"rtt_ms": args.rtt_ms, **summarize(rows)}
    print_table(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "tasks": rows}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


def forget(services: EdgeServices, user: str) -> None:
    """Make `user` cold again: no cached prefix, no live context holding theirs."""
    services.invalidate_prefix(user)
    # Through the pool: a streamed request may still be decoding after its first token.
    with ExitStack() as held:
        for _ in services.pool.models:
            model = held.enter_context(services.pool.acquire())
            model.start(model.tokenize("Hi")[:1])


def run(ends: BothEnds, records: list[dict], users: dict[str, str], max_tokens: int) -> list:
    rows = []
    seen: set[str] = set()
    gateway = ends.services.gateway
    with ends.client(timeout=600) as client:
        for record in tqdm(records, desc="tasks", unit="task"):
            user = users[record.get("tid")]
            task = record["conversations"][0]["value"]
            row = {"tid": record.get("tid"), "user": user}
            # The user's first request prefills the private prefix (cold); the second
            # finds it in the prefix cache (warm). A user seen before has no cold start.
            for key in ("cold", "cold_sequential"):
                row[f"ttft_{key}_s"] = row[f"after_outline_{key}_s"] = None
            if user not in seen:
                for overlap, key in ((False, "cold_sequential"), (True, "cold")):
                    forget(ends.services, user)
                    gateway.overlap_sketch = overlap
                    row[f"ttft_{key}_s"], row[f"after_outline_{key}_s"] = ttft(
                        client, user, task, max_tokens
                    )
            gateway.overlap_sketch = True
            row["ttft_warm_s"], row["after_outline_warm_s"] = ttft(client, user, task, max_tokens)
            seen.add(user)
            for mode in ("local", "cogenesis-sketch"):
                started = time.perf_counter()
                reply = client.post(
                    "/v1/chat/completions",
                    json={
                        "model": mode,
                        "user": user,
                        "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": task}],
                    },
                )
                wall = time.perf_counter() - started
                reply.raise_for_status()
                cg = reply.json()["cogenesis"]
                row[mode] = {
                    "wall_s": wall,
                    "small_model_s": cg["small_model_s"],
                    "cloud_wait_s": cg["cloud_wait_s"],
                    "edge_overhead_s": wall - cg["small_model_s"] - cg["cloud_wait_s"],
                    "completion_tokens": cg["completion_tokens"],
                    "bytes_up": cg["bytes_up"],
                    "degraded": cg["degraded"],
                }
            rows.append(row)
    return rows


def ttft(client: httpx.Client, user: str, task: str, max_tokens: int) -> tuple[float, float]:
    """A streamed sketch answer: seconds to its first text, and the edge's own share of
    them (from the outline's end, its report's ``outline_to_first_token_s``). Read to
    the end, so that no decoding goes on into the next request."""
    started = time.perf_counter()
    first: float | None = None
    report: dict = {}
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "cogenesis-sketch",
            "user": user,
            "max_tokens": max_tokens,
            "stream": True,
            "messages": [{"role": "user", "content": task}],
        },
    ) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            delta = (chunk.get("choices") or [{}])[0].get("delta", {})
            if first is None and delta.get("content"):
                first = time.perf_counter() - started
            report = chunk.get("cogenesis") or report
    if first is None or "outline_to_first_token_s" not in report:
        raise RuntimeError(f"the streamed sketch gave no text: {report}")
    return first, report["outline_to_first_token_s"]


def summarize(rows: list[dict]) -> dict:
    def mean(path: tuple[str, ...]) -> float:
        values = []
        for row in rows:
            value = row
            for key in path:
                value = value[key]
            if value is not None:
                values.append(value)
        return statistics.fmean(values)

    local = mean(("local", "wall_s"))
    sketch = mean(("cogenesis-sketch", "wall_s"))
    return {
        "tasks": len(rows),
        "local_wall_s": local,
        "sketch_wall_s": sketch,
        "sketch_over_local": sketch / local,
        "sketch_cloud_s": mean(("cogenesis-sketch", "cloud_wait_s")),
        "sketch_fill_s": mean(("cogenesis-sketch", "small_model_s")),
        "sketch_edge_overhead_s": mean(("cogenesis-sketch", "edge_overhead_s")),
        "sketch_edge_overhead_share": mean(("cogenesis-sketch", "edge_overhead_s")) / sketch,
        "local_edge_overhead_s": mean(("local", "edge_overhead_s")),
        "local_tokens": mean(("local", "completion_tokens")),
        "sketch_tokens": mean(("cogenesis-sketch", "completion_tokens")),
        "sketch_bytes_up": mean(("cogenesis-sketch", "bytes_up")),
        "ttft_cold_sequential_s": mean(("ttft_cold_sequential_s",)),
        "ttft_cold_s": mean(("ttft_cold_s",)),
        "ttft_cold_over_sequential": mean(("ttft_cold_s",)) / mean(("ttft_cold_sequential_s",)),
        "ttft_warm_s": mean(("ttft_warm_s",)),
        "ttft_warm_over_cold": mean(("ttft_warm_s",)) / mean(("ttft_cold_s",)),
        "after_outline_cold_seq_s": mean(("after_outline_cold_sequential_s",)),
        "after_outline_cold_s": mean(("after_outline_cold_s",)),
        "after_outline_warm_s": mean(("after_outline_warm_s",)),
        "degraded": sum(r["cogenesis-sketch"]["degraded"] for r in rows),
    }


def print_table(summary: dict) -> None:
    print(f"\n{'metric':<28}{'value':>12}")
    print("-" * 40)
    for key, value in summary.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<28}{shown:>12}")


if __name__ == "__main__":
    raise SystemExit(main())
