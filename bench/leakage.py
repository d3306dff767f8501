"""Privacy leakage of every mode and guard policy on dev-set tasks, in one run.

Both ends run for real on loopback: the cloud service (SmolLM2, recording every body it
receives) and the edge agent, called through its HTTP endpoint like any app, so the
guard, the outbound client and the ledger are the production path. Configurations:

    local                       the small model alone (nothing leaves)
    sketch / redact|block|off   the task title (guarded) -> outline
    logits / redact +prefix     guarded title; generated prefix through prefix redaction
    logits / redact -prefix     guarded title; the true generated token ids
    logits / off                raw title; the true generated token ids

Per configuration:
- leakage: the fraction of each user's private items (name parts, location parts,
  private-information items by their distinctive content words; bench/private_items.py)
  found in what the cloud could read of the request: the bodies it received plus the
  text decoded from the token ids each session was sent (in order, so a name split
  across calls counts). Averaged over requests; also by kind, and a looser "partial"
  count for long items;
- bytes sent per request, guard time per request (the title's Presidio + profile-term
  check, plus the per-token prefix matching in logits mode);
- answer quality: teacher-forced NLL per token of the reference answer (first
  --nll-tokens tokens). local / sketch: the small model alone, with the outline the
  request got. logits: the fused distribution (mean rule) with the cloud conditioned on
  what it would see: the (guarded or raw) title and the reference prefix, redacted by
  the prefix view or true. Positions the view holds back use the small model alone, as
  in generation.

    python -m bench.leakage [DATASET.json] [--tasks 30] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

from bench import DEFAULT_DATASET, RESULTS
from bench.harness import both_ends, load_tasks, record_user_id
from bench.private_items import KINDS, PrivateItem, leaks, private_items
from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server
from edge_agent.app import EdgeServices
from edge_agent.collab.fusion import fused_logprob, make_rule
from edge_agent.collab.prefix_view import make_view
from edge_agent.collab.private import build_private_prompt, start_private
from edge_agent.outbound import CloudClient, CloudUsage
from edge_agent.prompts import PUBLIC_SYSTEM, task_title
from research.teacher_forcing import cloud_positions, reference_tokens

TOKEN = "bench-token-" + "x" * 12


@dataclass(frozen=True)
class Config:
    name: str
    mode: str
    policy: str
    prefix_redaction: bool = True


CONFIGS = [
    Config("local", "local", "redact"),
    Config("sketch/redact", "cogenesis-sketch", "redact"),
    Config("sketch/block", "cogenesis-sketch", "block"),
    Config("sketch/off", "cogenesis-sketch", "off"),
    Config("logits/redact+prefix", "cogenesis-logits", "redact", True),
    Config("logits/redact-prefix", "cogenesis-logits", "redact", False),
    Config("logits/off", "cogenesis-logits", "off", False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--nll-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "leakage.json")
    args = parser.parse_args()
    records = load_tasks(args.dataset, args.tasks, "leakage")
    work = Path(tempfile.mkdtemp(prefix="bench-leakage-"))
    received = work / "received.jsonl"

    started = time.perf_counter()
    engine = shared_default_engine()
    recorded = CloudSettings(token=TOKEN, record_requests_to=received)
    with both_ends(records, work, recorded, engine, max_tokens=args.max_tokens, workers=1) as ends:
        # Teacher forcing goes to a second, unrecorded server on the same engine, so the
        # recorded traffic is exactly what the requests sent.
        eval_url, stop_eval = start_cloud_server(CloudSettings(token=TOKEN), engine)
        try:
            warm_up(ends.services, records)
            evaluator = Evaluator(ends.services, eval_url, args.nll_tokens)
            client = ends.client(timeout=900)
            rows = run(client, received, ends.services, evaluator, records, args.max_tokens)
        finally:
            stop_eval()
    summary = summarize(rows)
    print_table(summary, len(records), time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "dataset": args.dataset.name,
        "tasks": len(records),
        "max_tokens": args.max_tokens,
        "nll_tokens": args.nll_tokens,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


# --- requests -----------------------------------------------------------------------


def warm_up(services: EdgeServices, records: list[dict]) -> None:
    """Load Presidio and build every user's term matcher (cached per profile) first, so
    the guard time per request is the per-request cost, not one-off loading."""
    services.guard.warm_up()
    for user in {record_user_id(r) for r in records}:
        services.guard.matcher_for(services.store.profiles.load_context(user))


def run(
    client: httpx.Client,
    received: Path,
    services: EdgeServices,
    evaluator: Evaluator,
    records: list[dict],
    max_tokens: int,
) -> list[dict]:
    rows = []
    bar = tqdm(total=len(records) * len(CONFIGS), desc="requests", unit="req")
    with client:
        for record in records:
            user = record_user_id(record)
            items = private_items(record)
            task = record["conversations"][0]["value"]
            outcomes = {}
            for config in CONFIGS:
                bar.set_postfix_str(f"{record.get('tid')} {config.name}")
                outcomes[config.name] = request(client, received, services, user, task, config)
                bar.update()
            nll = evaluator.task_nll(user, record, outcomes)
            for config in CONFIGS:
                out = outcomes[config.name]
                row = {"tid": record.get("tid"), "config": config.name, "items": len(items)}
                row.update(measure(out, items))
                row["nll"] = nll.get(config.name)
                rows.append(row)
    bar.close()
    return rows


def request(
    client: httpx.Client,
    received: Path,
    services: EdgeServices,
    user: str,
    task: str,
    config: Config,
) -> dict[str, Any]:
    before = _line_count(received)
    options: dict[str, Any] = {"guard_policy": config.policy}
    if config.mode == "cogenesis-logits":
        options["prefix_redaction"] = config.prefix_redaction
    reply = client.post(
        "/v1/chat/completions",
        json={
            "model": config.mode,
            "user": user,
            "messages": [{"role": "user", "content": task}],
            "cogenesis": options,
        },
    )
    reply.raise_for_status()
    body = reply.json()
    records = _read_lines(received)[before:]
    return {
        "report": body["cogenesis"],
        "text": body["choices"][0]["message"]["content"],
        "readable": readable(services, records),
    }


def _read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _line_count(path: Path) -> int:
    return len(_read_lines(path))


def readable(services: EdgeServices, records: list[dict]) -> str:
    """What the cloud could read: every body, plus per session the text of all token
    ids it was sent (appended and drafted, in order)."""
    parts, sessions = [], {}
    for record in records:
        body = bytes.fromhex(record["body_hex"])
        parts.append(body.decode("utf-8", errors="replace"))
        try:
            message = json.loads(body)
        except ValueError:
            continue
        ids = message.get("prompt_token_ids", []) + message.get("append", [])
        sessions.setdefault(record["path"], []).extend(ids + message.get("draft", []))
    with services.pool.acquire() as slm:
        for ids in sessions.values():
            parts.append(slm.detokenize(ids).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def measure(out: dict[str, Any], items: list[PrivateItem]) -> dict[str, Any]:
    report = out["report"]
    hit = leaks(items, out["readable"])
    partial = leaks(items, out["readable"], partial=True)
    logits = report.get("logits") or {}
    guard = report.get("guard") or {}
    guard_s = float(guard.get("seconds") or 0.0) + float(logits.get("prefix_guard_s") or 0.0)
    row: dict[str, Any] = {
        "leaked": [(i.kind, i.text) for i in hit],
        "partly_leaked": [(i.kind, i.text) for i in partial if i not in hit],
        "leak_fraction": len(hit) / len(items) if items else 0.0,
        "partial_fraction": len(partial) / len(items) if items else 0.0,
        "bytes_up": report.get("bytes_up", 0),
        "guard_ms": 1000 * guard_s,
        "completion_tokens": report.get("completion_tokens", 0),
        "degraded": report.get("degraded", False),
        "held_back_steps": logits.get("held_back_steps"),
        "redacted_spans": logits.get("redacted_spans"),
        "collaborated": logits.get("collaborated"),
    }
    for kind in KINDS:
        of_kind = [i for i in items if i.kind == kind]
        row[f"leak_{kind}"] = sum(i.kind == kind for i in hit) / len(of_kind) if of_kind else None
    return row


# --- answer quality -----------------------------------------------------------------


class MemoryLedger:
    """The evaluation calls are not user traffic: keep them out of the edge's ledger."""

    def begin(self, **_: Any) -> int:
        return 0

    def finish(self, *_: Any, **__: Any) -> None:
        pass


class Evaluator:
    """Teacher-forced NLL of the reference, per configuration (see the module doc)."""

    def __init__(self, services: EdgeServices, eval_url: str, nll_tokens: int) -> None:
        self.services = services
        self.nll_tokens = nll_tokens
        self.client = CloudClient(eval_url, token=TOKEN, ledger=MemoryLedger(), timeout_s=300)
        self.rule = make_rule("mean")
        self.top_k = services.settings.top_k

    def task_nll(self, user: str, record: dict, outcomes: dict[str, dict]) -> dict[str, float]:
        svc = self.services
        ctx = svc.store.profiles.load_context(user)
        task = record["conversations"][0]["value"]
        out: dict[str, float] = {}
        with svc.pool.acquire() as slm:
            reference = record["conversations"][1]["value"]
            targets = reference_tokens(slm, reference, self.nll_tokens)
            edge = {}
            for config in CONFIGS:
                if config.mode == "cogenesis-logits":
                    continue
                points = outcomes[config.name]["report"].get("sketch_points") or None
                key = tuple(points or ())
                if key not in edge:
                    edge[key] = self._edge_rows(slm, ctx, task, points, targets)
                out[config.name] = _nll(edge[key], targets)
            rows = edge[()] if () in edge else self._edge_rows(slm, ctx, task, None, targets)
            matcher = svc.guard.matcher_for(ctx)
            for config in CONFIGS:
                if config.mode != "cogenesis-logits":
                    continue
                title = svc.guard.inspect(task_title(task), ctx, config.policy).text
                public = slm.tokenize(
                    slm.render_chat(
                        [
                            {"role": "system", "content": PUBLIC_SYSTEM},
                            {"role": "user", "content": title},
                        ]
                    )
                )
                view = make_view(matcher if config.prefix_redaction else None, slm)
                where: list[int | None] = []
                for token in targets:
                    where.append(len(view.released) if view.in_sync else None)
                    view.feed(token)
                view.flush()
                positions = cloud_positions(
                    self.client,
                    public,
                    list(view.released) + [0],
                    len(rows[0]),
                    top_k=self.top_k,
                    user_id="bench-eval",
                    usage=CloudUsage(),
                )
                out[config.name] = self._fused_nll(rows, targets, positions, where)
        return out

    def _edge_rows(self, slm, ctx, task, outline, targets) -> np.ndarray:
        prompt = build_private_prompt(slm, ctx, task, outline, self.services.gateway.limits)
        with slm.lock:
            first = start_private(slm, prompt)
            rest = slm.append_all(targets[:-1], keep_last=None) if len(targets) > 1 else []
        return np.vstack([first[None, :], *([rest] if len(rest) else [])])

    def _fused_nll(self, rows, targets, positions, where) -> float:
        total = 0.0
        for i, target in enumerate(targets):
            j = where[i]
            if j is None:  # held back: the small model decides alone
                total -= float(rows[i][target])
            else:
                ids = np.array([target])
                total -= float(fused_logprob(self.rule, rows[i], positions[j], ids)[0])
        return total / len(targets)


def _nll(rows: np.ndarray, targets: list[int]) -> float:
    return float(-np.mean([rows[i][t] for i, t in enumerate(targets)]))


# --- summary ------------------------------------------------------------------------


def summarize(rows: list[dict]) -> dict[str, dict[str, Any]]:
    summary = {}
    for config in CONFIGS:
        mine = [r for r in rows if r["config"] == config.name]

        def mean(key: str, rows: list[dict] = mine) -> float | None:
            values = [r[key] for r in rows if r.get(key) is not None]
            return statistics.fmean(values) if values else None

        summary[config.name] = {
            "requests": len(mine),
            "leak_fraction": mean("leak_fraction"),
            "partial_fraction": mean("partial_fraction"),
            **{f"leak_{kind}": mean(f"leak_{kind}") for kind in KINDS},
            "private_term_hits": sum(len(r["leaked"]) for r in mine),
            "requests_with_a_leak": sum(bool(r["leaked"]) for r in mine),
            "bytes_up": mean("bytes_up"),
            "guard_ms": mean("guard_ms"),
            "nll": mean("nll"),
            "held_back_steps": mean("held_back_steps"),
            "redacted_spans": mean("redacted_spans"),
            "completion_tokens": mean("completion_tokens"),
            "degraded": sum(bool(r["degraded"]) for r in mine),
        }
    return summary


COLUMNS = [
    ("leak %", "leak_fraction", 100, "{:.2f}"),
    ("name %", "leak_name", 100, "{:.1f}"),
    ("loc %", "leak_location", 100, "{:.1f}"),
    ("priv %", "leak_private", 100, "{:.1f}"),
    ("partial %", "partial_fraction", 100, "{:.2f}"),
    ("hits", "private_term_hits", 1, "{}"),
    ("bytes/req", "bytes_up", 1, "{:.0f}"),
    ("guard ms", "guard_ms", 1, "{:.1f}"),
    ("NLL", "nll", 1, "{:.3f}"),
    ("held", "held_back_steps", 1, "{:.1f}"),
    ("redacted", "redacted_spans", 1, "{:.2f}"),
    ("degraded", "degraded", 1, "{}"),
]


def print_table(summary: dict, tasks: int, wall_s: float) -> None:
    print(f"\nleakage on {tasks} dev tasks ({wall_s / 60:.1f} min)")
    header = f"{'configuration':<22}" + "".join(f"{name:>11}" for name, *_ in COLUMNS)
    print(header)
    print("-" * len(header))
    for config, values in summary.items():
        cells = []
        for _name, key, scale, fmt in COLUMNS:
            value = values.get(key)
            cells.append("-" if value is None else fmt.format(value * scale))
        print(f"{config:<22}" + "".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
