"""Cloud under concurrent load: sketch requests and logits steps at 1, 2, 4 and 8 clients.

One cloud process (llama.cpp engine, the embedded SmolLM2) on loopback, as operators
run it: tenants, admission queue, metrics. Each client is a closed loop (its next
request leaves when its last answer came back):
  - sketch: POST /v1/sketch, ``--sketch-tokens`` tokens at most;
  - logits: ``--steps`` steps of an open session, each appending one token and scoring
    a 4-token draft (5 positions); opening and closing the session are not timed.
A shed request (503 or 429) is counted apart and, if it carries Retry-After, sent again
after that long; one without Retry-After is an error. Latencies are of answered
requests. Every figure is also a ratio against one client in the same run; the levels
take turns in rounds, so background load on the machine falls on all of them alike.

Goals (per workload): 0 errors and 0 timeouts at 8 clients; throughput at 4 clients at
least 1.0x that of 1 client; p95 at 4 clients at most 5x a single request (p50 at 1).

    python -m bench.cloud_load [--clients 1,2,4,8] [--rounds 3] [--requests 1] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import RESULTS
from cogenesis.servers import free_port, start_cloud_process, wait_healthy

TOKEN = "bench-cloud-load-token"
CLIENT_TIMEOUT_S = 60.0  # the edge's default cloud timeout
TOPICS = [
    "morning walks",
    "tea",
    "the sea",
    "city gardens",
    "night trains",
    "winter bread",
    "old maps",
    "river birds",
]
GOALS = {"errors_at_8": 0, "throughput_x_at_4": 1.0, "p95_x_at_4": 5.0}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    shed: int = 0
    shed_without_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)


class Client:
    """One closed-loop client with its own connection."""

    def __init__(self, url: str, tally: Tally) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=CLIENT_TIMEOUT_S
        )
        self.tally = tally

    def send(self, method: str, path: str, body: dict | None = None) -> dict | None:
        """The answer's JSON (None for 204), retrying shed answers after their Retry-After;
        None also when the request failed (counted)."""
        while True:
            started = time.perf_counter()
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TimeoutException:
                with self.tally.lock:
                    self.tally.timeouts += 1
                return None
            except httpx.HTTPError:
                with self.tally.lock:
                    self.tally.errors += 1
                return None
            elapsed = time.perf_counter() - started
            if response.status_code in (429, 503):
                retry_after = response.headers.get("retry-after", "")
                with self.tally.lock:
                    self.tally.shed += 1
                    if not retry_after.isdigit():
                        self.tally.shed_without_retry_after += 1
                        self.tally.errors += 1
                        return None
                time.sleep(int(retry_after))
                continue
            if response.status_code >= 400:
                with self.tally.lock:
                    self.tally.errors += 1
                return None
            self.tally.add(elapsed)
            return response.json() if response.content else {}

    def close(self) -> None:
        self.http.close()


class Workload:
    """What one client does in a round: ``setup`` (not timed), ``work`` (timed, from
    the moment every client of the level is ready), ``teardown`` (not timed)."""

    def __init__(self, client: Client, index: int, args: argparse.Namespace) -> None:
        self.client, self.index, self.args = client, index, args

    def setup(self) -> None:
        pass

    def work(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        pass


class Sketches(Workload):
    def work(self) -> None:
        for i in range(self.args.requests):
            topic = TOPICS[(self.index + i) % len(TOPICS)]
            body = {"instruction": f"Write about {topic}.", "max_tokens": self.args.sketch_tokens}
            self.client.send("POST", "/v1/sketch", body)


class LogitsSteps(Workload):
    """Steps of an open session: opening (a prefill) and closing are not the workload."""

    sid: str | None = None

    def setup(self) -> None:
        topic = TOPICS[self.index % len(TOPICS)]
        body = {"prompt": f"Write two sentences about {topic}.", "system": "Be brief.", "top_k": 10}
        opened = self.client.http.post("/v1/sessions", json=body)
        if opened.status_code != 201:
            with self.client.tally.lock:
                self.client.tally.errors += 1
            return
        self.sid, self.row = opened.json()["session_id"], opened.json()["next"]

    def work(self) -> None:
        if self.sid is None:
            return
        for _ in range(self.args.steps):
            best = self.row["token_ids"]
            # Append the best token, draft four more from the same row (like a real draft,
            # some are kept and some are not; the cloud scores all five positions).
            answer = self.client.send(
                "POST", f"/v1/sessions/{self.sid}/step", {"append": [best[0]], "draft": best[1:5]}
            )
            if answer is None:
                break
            self.row = answer["positions"][-1]

    def teardown(self) -> None:
        if self.sid is not None:
            self.client.http.delete(f"/v1/sessions/{self.sid}")


WORKLOADS: dict[str, type[Workload]] = {"sketch": Sketches, "logits": LogitsSteps}


def run_level(
    url: str, workload: str, clients: int, args: argparse.Namespace, tally: Tally
) -> float:
    """One round of one level into ``tally``; returns the wall time of its timed part."""
    pool = [Client(url, tally) for _ in range(clients)]
    jobs = [WORKLOADS[workload](c, i, args) for i, c in enumerate(pool)]
    ready = threading.Barrier(clients + 1)
    ends: list[float] = []

    def run(job: Workload) -> None:
        job.setup()
        ready.wait()
        job.work()
        ends.append(time.perf_counter())
        job.teardown()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    for client in pool:
        client.close()
    return max(ends) - started


def level_row(workload: str, clients: int, tally: Tally, wall: float) -> dict:
    lat = sorted(tally.latencies)
    return {
        "workload": workload,
        "clients": clients,
        "answered": len(lat),
        "wall_s": round(wall, 3),
        "throughput_per_s": round(len(lat) / wall, 3) if wall else 0.0,
        "p50_s": round(_quantile(lat, 0.50), 4),
        "p95_s": round(_quantile(lat, 0.95), 4),
        "errors": tally.errors,
        "timeouts": tally.timeouts,
        "shed": tally.shed,
        "shed_without_retry_after": tally.shed_without_retry_after,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row against its workload's 1-client row: throughput, p50 and p95 (both
    against a single request: p50 at 1 client)."""
    base = {r["workload"]: r for r in rows if r["clients"] == 1}
    for r in rows:
        one = base[r["workload"]]
        r["throughput_x"] = _ratio(r["throughput_per_s"], one["throughput_per_s"])
        r["p50_x"] = _ratio(r["p50_s"], one["p50_s"])
        r["p95_x"] = _ratio(r["p95_s"], one["p50_s"])
    return rows


def _ratio(value: float, base: float) -> float:
    """NaN when the baseline answered nothing: there is no ratio to speak of."""
    return round(value / base, 3) if base and base == base else float("nan")


def goals_met(rows: list[dict]) -> dict[str, bool]:
    met = {}
    for workload in WORKLOADS:
        by = {r["clients"]: r for r in rows if r["workload"] == workload}
        if 8 in by:
            met[f"{workload}: 0 errors/timeouts at 8"] = by[8]["errors"] + by[8]["timeouts"] == 0
        if 4 in by:
            met[f"{workload}: throughput at 4 >= 1.0x"] = (
                by[4]["throughput_x"] >= GOALS["throughput_x_at_4"]
            )
            met[f"{workload}: p95 at 4 <= 5x single"] = by[4]["p95_x"] <= GOALS["p95_x_at_4"]
    return met


def table(report: dict) -> str:
    head = (
        f"{'workload':<8}{'clients':>8}{'answered':>9}{'req/s':>8}{'x1':>6}{'p50 s':>8}"
        f"{'x1':>6}{'p95 s':>8}{'x1':>6}{'errors':>7}{'timeouts':>9}{'shed':>6}"
    )
    lines = [
        f"cloud load bench: engine {report['engine']}, {report['cloud_threads']} thread(s), "
        f"slots {report['engine_slots']}, queue {report['max_queue']}; {report['rounds']} "
        f"rounds; a round: sketch {report['sketch_tokens']} tokens x {report['requests']} per "
        f"client, logits {report['steps']} steps (1 appended + 4 drafted) per client",
        head,
        "-" * len(head),
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['workload']:<8}{r['clients']:>8}{r['answered']:>9}{r['throughput_per_s']:>8.2f}"
            f"{r['throughput_x']:>6.2f}{r['p50_s']:>8.3f}{r['p50_x']:>6.2f}{r['p95_s']:>8.3f}"
            f"{r['p95_x']:>6.2f}{r['errors']:>7}{r['timeouts']:>9}{r['shed']:>6}"
        )
    lines.append(
        "goals: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in report["goals"].items())
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    levels = [int(n) for n in args.clients.split(",")]
    if 1 not in levels:
        levels = [1, *levels]  # the baseline of every ratio
    port = free_port()
    env = {
        "COGENESIS_CLOUD_TOKEN": TOKEN,
        "COGENESIS_CLOUD_PORT": str(port),
        "COGENESIS_CLOUD_N_THREADS": str(args.cloud_threads),
        "COGENESIS_CLOUD_MAX_QUEUE": str(args.max_queue),
    }
    if args.engine_slots:
        env["COGENESIS_CLOUD_ENGINE_SLOTS"] = str(args.engine_slots)
    log = Path(tempfile.mkdtemp(prefix="bench-cloud-load-")) / "cloud.log"
    process = start_cloud_process(env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        info = httpx.get(f"{url}/v1/info", headers=headers, timeout=30).json()
        # Warm up: the first sketch pays for its constant system prompt once.
        warm = Client(url, Tally())
        warm.send("POST", "/v1/sketch", {"instruction": "Warm up.", "max_tokens": 16})
        warm.close()
        # Levels take turns, round after round: whatever else loads the machine then
        # weighs on every level alike instead of on whichever ran at the time.
        keys = [(w, c) for w in args.workloads.split(",") for c in levels]
        tallies = {key: Tally() for key in keys}
        walls = dict.fromkeys(keys, 0.0)
        for _ in range(args.rounds):
            for key in keys:
                walls[key] += run_level(url, *key, args, tallies[key])
        rows = [level_row(*key, tallies[key], walls[key]) for key in keys]
    finally:
        process.terminate()
        process.wait(20)
    rows = with_ratios(rows)
    return {
        "bench": "cloud_load",
        "engine": info["engine"],
        "model_id": info["model_id"],
        "cloud_threads": args.cloud_threads,
        "engine_slots": args.engine_slots or "engine default",
        "max_queue": args.max_queue,
        "sketch_tokens": args.sketch_tokens,
        "requests": args.requests,
        "steps": args.steps,
        "rounds": args.rounds,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "goals": goals_met(rows),
        "rows": rows,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,2,4,8", help="concurrency levels")
    parser.add_argument("--workloads", default="sketch,logits")
    parser.add_argument("--rounds", type=int, default=4, help="turns of every level")
    parser.add_argument("--requests", type=int, default=1, help="sketches per client a round")
    parser.add_argument("--steps", type=int, default=6, help="logits steps per client a round")
    parser.add_argument("--sketch-tokens", type=int, default=40)
    # One thread, as the other benches: spinning llama.cpp threads on a shared machine
    # are far slower than one.
    parser.add_argument("--cloud-threads", type=int, default=1)
    parser.add_argument("--engine-slots", type=int, default=None, help="default: the engine's")
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS / "cloud_load.json")
    args = parser.parse_args(argv)
    report = run(args)
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
