"""Sketch mode against local-only generation, on dev-set tasks, in one run.

Both ends run for real on loopback (cloud service and edge agent, SmolLM2 on each).
For each task it measures, through the edge's HTTP endpoint:
  - sketch: cloud sketch time, edge fill time, total;
  - local: the small model alone with the same token budget;
  - time to first token in sketch mode for a cold user (nothing of theirs cached on the
    edge), with the private prefill overlapping the outline request and without it
    (the sequential path), and for a returning user.
Times are reported as ratios against local-only measured in the same run.

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
            row["ttft_cold_s"] = row["ttft_cold_sequential_s"] = None
            if user not in seen:
                for overlap, key in ((False, "ttft_cold_sequential_s"), (True, "ttft_cold_s")):
                    forget(ends.services, user)
                    gateway.overlap_sketch = overlap
                    row[key] = ttft(client, user, task)
            gateway.overlap_sketch = True
            row["ttft_warm_s"] = ttft(client, user, task)
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


def ttft(client: httpx.Client, user: str, task: str) -> float:
    started = time.perf_counter()
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "cogenesis-sketch",
            "user": user,
            "max_tokens": 4,
            "stream": True,
            "messages": [{"role": "user", "content": task}],
        },
    ) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                return time.perf_counter() - started
    return time.perf_counter() - started


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
