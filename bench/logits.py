"""Logits-mode benchmark: cloud round trips, uplink bytes and speed per generated token.

On N dev-set tasks (default 20), one run each on loopback, with greedy decoding:
- local: the small model alone (no cloud);
- step: step-by-step fusion, the cloud consulted at every token (one call per token);
- schedule: step-by-step fusion on the paper's P/K/T schedule (5, 10, 3);
- draft4 / draft8: draft-and-verify, every token fused, N = 4 / 8, drafts cut where
  the small model's probability of the whole draft drops below 0.05 (draft8 is the
  default of logits mode: N starts at 8 and adapts to acceptance and round trip);
  draft8-static: N = 8 without adapting; draft8-fixed: always N = 8, no floor;
- draft8+schedule: both;
- cloud8: every round drafted by the cloud (it proposes 8 tokens of its own, the edge
  scores them in one batch); step-exact: step by step with the small model evaluated
  batch-invariantly, as cloud rounds do (their reference for identical tokens);
- auto: per round the edge, the cloud or nobody drafts, by measured speed.

Columns beyond speed: the cloud's acceptance (proposed tokens kept), the edge's compute
per output token in single-step units (its small-model seconds per token over the
seconds per token of local decoding in the same run), the edge-bound speed (the cloud's
compute and the wait counted as zero: local s/token over the edge's own s/token) and
the limit (1 / small-model evaluations per token).

Prints a table and writes JSON (bench/results/logits.json). The cloud runs as a real
server: by default a separate process (`python -m cloud_service serve` on a free port),
like a remote machine; `--cloud inproc` uses cloud_service.testing in this process.

    .venv/bin/python -m bench.logits [DATASET] [--tasks 20] [--max-tokens 128] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bench import DEFAULT_DATASET, RESULTS
from cogenesis.latency_proxy import delaying_proxy
from cogenesis.servers import free_port, start_cloud_process, wait_healthy
from edge_agent.collab.logits import CloudLink, LogitsLoop, LogitsOptions, PublicPrompt
from edge_agent.collab.private import PrivatePrompt
from edge_agent.collab.schedule import Schedule
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.slm import SmallModel
from research.dataset import load_tasks, task_prompts
from shared_protocol import PROPOSE_CAPABILITY
from shared_protocol.defaults import default_gguf_path

DEFAULT_OUT = RESULTS / "logits.json"
PAPER_SCHEDULE = Schedule(5, 10, 3)
BENCH_TOKEN = "bench-logits-token"
TARGETS = {"uplink_bytes_per_token": 64, "round_trips_per_token": 0.25, "speed_vs_local": 0.7}


@dataclass(frozen=True)
class Config:
    name: str
    draft: int
    schedule: Schedule | None  # None: local only
    min_prob: float = 0.05  # LogitsOptions.draft_min_prob
    adaptive: bool = True  # LogitsOptions.adaptive_draft
    drafter: str = "edge"  # LogitsOptions.drafter
    exact: bool = False  # LogitsOptions.batch_invariant


CONFIGS = (
    Config("local", 0, None),
    Config("step", 0, Schedule.every_step()),
    Config("schedule", 0, PAPER_SCHEDULE),
    Config("draft4", 4, Schedule.every_step()),
    Config("draft8", 8, Schedule.every_step()),
    Config("draft8-static", 8, Schedule.every_step(), adaptive=False),
    Config("draft8-fixed", 8, Schedule.every_step(), min_prob=0.0, adaptive=False),
    Config("draft8+schedule", 8, PAPER_SCHEDULE),
    Config("cloud8", 8, Schedule.every_step(), drafter="cloud"),
    Config("step-exact", 0, Schedule.every_step(), exact=True),
    Config("auto", 8, Schedule.every_step(), drafter="auto"),
)
DEFAULT_CONFIG = "draft8"
SAME_OUTPUT = {
    "draft4": "step",
    "draft8": "step",
    "draft8-static": "step",
    "draft8-fixed": "step",
    "draft8+schedule": "schedule",
    # Cloud rounds evaluate the small model batch-invariantly (docs/logits.md): the
    # same tokens as step by step evaluated so.
    "cloud8": "step-exact",
    "auto": "step-exact",
}


@dataclass
class Totals:
    tokens: int = 0
    calls: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    drafted: int = 0
    accepted: int = 0
    evals: int = 0
    wall_s: float = 0.0
    small_s: float = 0.0
    wait_s: float = 0.0
    degraded: int = 0
    proposed: int = 0
    proposed_accepted: int = 0
    rounds: dict[str, int] = field(default_factory=dict)
    per_task_speed: list[float] = field(default_factory=list)
    identical: int = 0
    compared: int = 0


class MemoryLedger:
    """Counts entries; the benchmark measures the loop, not the SQLite ledger."""

    def __init__(self) -> None:
        self.entries = 0

    def begin(self, **_: object) -> int:
        self.entries += 1
        return self.entries

    def finish(self, *_: object, **__: object) -> None:
        pass


@contextmanager
def cloud_server(mode: str, threads: int | None) -> Iterator[str]:
    if mode == "inproc":
        from cloud_service.settings import CloudSettings
        from cloud_service.testing import start_cloud_server

        server = start_cloud_server(CloudSettings(n_threads=threads, token=BENCH_TOKEN))
        try:
            yield server.base_url
        finally:
            server.stop()
        return
    port = free_port()
    env = {"COGENESIS_CLOUD_TOKEN": BENCH_TOKEN, "COGENESIS_CLOUD_PORT": str(port)}
    if threads:
        env["COGENESIS_CLOUD_N_THREADS"] = str(threads)
    log = Path(tempfile.mkdtemp(prefix="bench-logits-")) / "cloud.log"
    proc = start_cloud_process(env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args: argparse.Namespace) -> dict:
    tasks = load_tasks(args.dataset, args.tasks)
    slm = SmallModel(default_gguf_path(), n_ctx=4096, n_threads=args.edge_threads)
    build = task_prompts(slm)
    totals = {c.name: Totals() for c in CONFIGS}
    configs = selected_configs(args.configs)
    with (
        cloud_server(args.cloud, args.cloud_threads) as cloud_url,
        delaying_proxy(cloud_url, args.rtt_ms, args.jitter_ms, seed=0) as url,
    ):
        client = CloudClient(url, token=BENCH_TOKEN, ledger=MemoryLedger(), timeout_s=60)
        info = client.info()
        can_propose = PROPOSE_CAPABILITY in info.capabilities
        if info.tokenizer_fingerprint != slm.tokenizer_fingerprint:
            raise SystemExit("the cloud's tokenizer differs from the small model's")
        for index, task in enumerate(tqdm(tasks, desc="logits bench", unit="task")):
            private, public = build(task)
            slm.start(private)  # prefill once; every run below reuses it
            outputs: dict[str, list[int]] = {}
            speeds: dict[str, float] = {}
            # Rotate the order so that load from other processes spreads over configs.
            order = configs[index % len(configs) :] + configs[: index % len(configs)]
            for config in order:
                usage = CloudUsage()
                options = LogitsOptions(
                    fusion=args.fusion,
                    schedule=config.schedule or Schedule.every_step(),
                    draft_tokens=config.draft,
                    top_k=args.top_k,
                    max_tokens=args.max_tokens,
                    draft_min_prob=config.min_prob,
                    adaptive_draft=config.adaptive,
                    lookahead=not args.no_lookahead,
                    drafter=config.drafter,
                    batch_invariant=config.exact,
                )
                link = CloudLink(client, f"bench-{index}", usage, can_propose=can_propose)
                result = LogitsLoop(
                    slm,
                    PrivatePrompt.uncached(private),
                    PublicPrompt.of_tokens(public),
                    options,
                    cloud=link if config.schedule is not None else None,
                ).run()
                t = totals[config.name]
                t.tokens += result.generated_tokens
                t.calls += result.cloud_calls
                t.bytes_up += result.bytes_up
                t.bytes_down += result.bytes_down
                t.drafted += result.drafted
                t.accepted += result.accepted
                t.evals += result.small_model_evals
                t.wall_s += result.wall_s
                t.small_s += result.small_model_s
                t.wait_s += result.cloud_wait_s
                t.degraded += result.degraded
                t.proposed += result.proposed
                t.proposed_accepted += result.proposed_accepted
                for kind, n in result.rounds.items():
                    t.rounds[kind] = t.rounds.get(kind, 0) + n
                outputs[config.name] = result.tokens
                speeds[config.name] = result.generated_tokens / max(result.wall_s, 1e-9)
            for name, speed in speeds.items():
                totals[name].per_task_speed.append(speed / speeds["local"])
            for name, reference in SAME_OUTPUT.items():
                if name not in outputs or reference not in outputs:
                    continue
                totals[name].compared += 1
                totals[name].identical += outputs[name] == outputs[reference]
    return summarize(args, totals, len(tasks), configs)


def selected_configs(names: str | None) -> tuple[Config, ...]:
    """The configs named in a comma-separated list (all by default); local always runs."""
    if not names:
        return CONFIGS
    wanted = {"local", *names.split(",")}
    unknown = wanted - {c.name for c in CONFIGS}
    if unknown:
        raise SystemExit(f"bench logits: unknown configs: {', '.join(sorted(unknown))}")
    return tuple(c for c in CONFIGS if c.name in wanted)


def summarize(
    args: argparse.Namespace, totals: dict[str, Totals], n_tasks: int, configs=CONFIGS
) -> dict:
    local_speed = totals["local"].tokens / max(totals["local"].wall_s, 1e-9)
    # The unit of edge compute: seconds per token of local decoding, in this run.
    local_step_s = totals["local"].small_s / max(totals["local"].tokens, 1)
    rows = []
    for config in configs:
        t = totals[config.name]
        tokens = max(t.tokens, 1)
        speed = t.tokens / max(t.wall_s, 1e-9)
        rows.append(
            {
                "config": config.name,
                "draft_tokens": config.draft,
                "schedule": str(config.schedule) if config.schedule else "-",
                "tokens": t.tokens,
                "round_trips_per_token": t.calls / tokens,
                "uplink_bytes_per_token": t.bytes_up / tokens,
                "downlink_bytes_per_token": t.bytes_down / tokens,
                "acceptance": t.accepted / t.drafted if t.drafted else None,
                "small_model_evals_per_token": t.evals / tokens,
                # If the cloud's time were free: local speed / small-model evals per token.
                "limit_vs_local": tokens / max(t.evals, 1),
                "cloud_acceptance": t.proposed_accepted / t.proposed if t.proposed else None,
                "edge_steps_per_token": t.small_s / tokens / max(local_step_s, 1e-9),
                # The cloud's compute and the wait free: local s/token / the edge's own.
                "edge_bound_vs_local": local_step_s / max(t.small_s / tokens, 1e-9),
                "rounds": t.rounds,
                "tokens_per_s": speed,
                "speed_vs_local": speed / local_speed,
                "speed_vs_local_median_task": statistics.median(t.per_task_speed),
                "small_model_s": t.small_s,
                "cloud_wait_s": t.wait_s,
                "degraded_runs": t.degraded,
                "identical_to": SAME_OUTPUT.get(config.name),
                "identical_runs": f"{t.identical}/{t.compared}" if t.compared else None,
            }
        )
    default = next((r for r in rows if r["config"] == DEFAULT_CONFIG), None)
    checks = (
        {}
        if default is None
        else {
            "uplink_bytes_per_token": default["uplink_bytes_per_token"]
            <= TARGETS["uplink_bytes_per_token"],
            "round_trips_per_token": default["round_trips_per_token"]
            <= TARGETS["round_trips_per_token"],
            "speed_vs_local": default["speed_vs_local"] >= TARGETS["speed_vs_local"],
        }
    )
    return {
        "benchmark": "logits",
        "dataset": str(Path(args.dataset).resolve()),
        "tasks": n_tasks,
        "max_tokens": args.max_tokens,
        "top_k": args.top_k,
        "fusion": args.fusion,
        "decoding": "greedy",
        "lookahead": not args.no_lookahead,
        "cloud": args.cloud,
        "rtt_ms": args.rtt_ms,
        "jitter_ms": args.jitter_ms,
        "edge_threads": args.edge_threads,
        "cloud_threads": args.cloud_threads,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "default_config": DEFAULT_CONFIG,
        "targets": TARGETS,
        "targets_met": checks,
        "rows": rows,
    }


def table(report: dict) -> str:
    head = (
        f"{'config':<17}{'N':>3}{'sched':>9}{'tokens':>8}{'rt/tok':>8}{'up B/tok':>10}"
        f"{'down B/tok':>11}{'accept':>8}{'c.acc':>7}{'evals':>7}{'steps':>7}{'limit':>7}"
        f"{'tok/s':>8}{'x local':>9}{'x med':>7}{'x edge':>8}"
        f"{'same':>8}"
    )
    lines = [
        f"logits bench: {report['tasks']} tasks x {report['max_tokens']} tokens, greedy, "
        f"fusion={report['fusion']}, top-k={report['top_k']}, cloud={report['cloud']}, "
        f"threads edge={report['edge_threads']} cloud={report['cloud_threads']}, "
        f"rtt={report['rtt_ms']} ms (jitter {report['jitter_ms']} ms), "
        f"lookahead={report['lookahead']}",
        head,
        "-" * len(head),
    ]
    for r in report["rows"]:
        accept = f"{r['acceptance']:.2f}" if r["acceptance"] is not None else "-"
        cloud_accept = f"{r['cloud_acceptance']:.2f}" if r["cloud_acceptance"] is not None else "-"
        lines.append(
            f"{r['config']:<17}{r['draft_tokens']:>3}{r['schedule']:>9}{r['tokens']:>8}"
            f"{r['round_trips_per_token']:>8.3f}{r['uplink_bytes_per_token']:>10.1f}"
            f"{r['downlink_bytes_per_token']:>11.1f}{accept:>8}{cloud_accept:>7}"
            f"{r['small_model_evals_per_token']:>7.2f}{r['edge_steps_per_token']:>7.2f}"
            f"{r['limit_vs_local']:>7.2f}{r['tokens_per_s']:>8.1f}"
            f"{r['speed_vs_local']:>9.2f}{r['speed_vs_local_median_task']:>7.2f}"
            f"{r['edge_bound_vs_local']:>8.2f}"
            f"{(r['identical_runs'] or '-'):>8}"
        )
    met = ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in report["targets_met"].items())
    lines.append(f"targets for {report['default_config']}: {met}")
    lines.append(
        "c.acc: cloud-proposed tokens kept; steps: edge compute per token in local-decoding "
        "steps; x edge: edge-bound speed (cloud compute and wait free) vs local"
    )
    rounds = [f"{r['config']} {r['rounds']}" for r in report["rows"] if r["rounds"]]
    lines.append("rounds by drafter: " + "; ".join(rounds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default=str(DEFAULT_DATASET))
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--fusion", default="mean")
    parser.add_argument("--cloud", choices=["process", "inproc"], default="process")
    # One core per end by default: in deployment the cloud is another machine, and the
    # local-only baseline runs with the same single thread as the edge.
    parser.add_argument("--edge-threads", type=int, default=1)
    parser.add_argument("--cloud-threads", type=int, default=1)
    parser.add_argument("--no-lookahead", action="store_true")
    # A network between the ends: a delaying proxy on loopback (cogenesis/latency_proxy.py).
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--configs", help="comma-separated subset of the configs (local always)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    report = run(args)
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
