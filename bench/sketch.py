"""Sketch mode against local-only generation, on dev-set tasks, in one run.

Both ends run for real on loopback (cloud service and edge agent, SmolLM2 on each).
For each task it measures, through the edge's HTTP endpoint:
  - sketch: cloud sketch time, edge fill time, total;
  - local: the small model alone with the same token budget;
  - time to first token for a cold user (no cached prefix) and a returning one.
Times are reported as ratios against local-only measured in the same run.

    python -m bench.sketch [DATASET.json] [--tasks 20] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tqdm import tqdm

from bench import DEFAULT_DATASET, RESULTS
from bench.harness import both_ends, load_tasks, record_user_id
from cloud_service.settings import CloudSettings

TOKEN = "bench-token"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS / "sketch.json")
    args = parser.parse_args()

    records = load_tasks(args.dataset, args.tasks, "sketch")
    users = {r.get("tid"): record_user_id(r) for r in records}
    work = Path(tempfile.mkdtemp(prefix="bench-sketch-"))
    with both_ends(records, work, CloudSettings(token=TOKEN), max_tokens=args.max_tokens) as ends:
        rows = run(ends.client(timeout=600), records, users, args.max_tokens)
    summary = summarize(rows)
    print_table(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "tasks": rows}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


def run(client: httpx.Client, records: list[dict], users: dict[str, str], max_tokens: int) -> list:
    rows = []
    seen: set[str] = set()
    with client:
        for record in tqdm(records, desc="tasks", unit="task"):
            user = users[record.get("tid")]
            task = record["conversations"][0]["value"]
            row = {"tid": record.get("tid"), "user": user}
            # The user's first request prefills the private prefix (cold); the second
            # finds it in the prefix cache (warm). A user seen before has no cold start.
            row["ttft_cold_s"] = None if user in seen else ttft(client, user, task)
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
            "model": "local",
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
        "local_edge_overhead_s": mean(("local", "edge_overhead_s")),
        "local_tokens": mean(("local", "completion_tokens")),
        "sketch_tokens": mean(("cogenesis-sketch", "completion_tokens")),
        "sketch_bytes_up": mean(("cogenesis-sketch", "bytes_up")),
        "ttft_cold_s": mean(("ttft_cold_s",)),
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
