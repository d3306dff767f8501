"""`cogenesis eval run`: every mode on a CoGenesis-format dataset, judged by an LLM.

    cogenesis eval run DATASET.json \\
        --modes local,cogenesis-sketch,cogenesis-logits,cloud-no-context \\
        --judge-url URL --judge-model M --out DIR [--tasks N]

The cloud (``--cloud-url``, token from COGENESIS_CLOUD_TOKEN) must be running; the edge
runs in this process on a store of its own in DIR. Writes DIR/report.md, report.json
and scores.png; a rerun with the same DIR continues where the last one stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge_agent.cli import CliError, run_parser
from research.evaluate.modes import ALL_MODES, CONTEXT_TO_CLOUD

WARNING = (
    "WARNING: cloud-with-context sends each user's private profile and writing history "
    "to the cloud at {url}. It exists only as the paper's upper bound; never use it with "
    "real people's data."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cogenesis eval run",
        description="Run every mode on a dataset and write a Table-1-shaped report.",
    )
    p.add_argument("dataset", type=Path, help="a CoGenesis-format JSON file")
    p.add_argument("--modes", required=True, help=f"comma-separated, of: {', '.join(ALL_MODES)}")
    p.add_argument("--judge-url", required=True, help="OpenAI-compatible API of the judge")
    p.add_argument("--judge-model", required=True)
    p.add_argument(
        "--judge-api-key-env",
        metavar="VAR",
        help="variable holding the judge's key (default: OPENAI_API_KEY; the cloud's "
        "token when the judge is the cloud itself)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for checkpoints and report")
    p.add_argument("--tasks", type=int, help="only the first N tasks")
    p.add_argument("--cloud-url", help="the cloud service (default: the edge's setting)")
    p.add_argument("--model", type=Path, help="GGUF of the small model (default: SmolLM2)")
    p.add_argument("--max-tokens", type=int, default=128, help="answer length in tokens")
    p.add_argument("--nll-tokens", type=int, default=64, help="reference tokens scored")
    p.add_argument("--no-nll", action="store_true", help="skip the reference NLL")
    p.add_argument("--judge-max-tokens", type=int, default=256)
    p.add_argument(
        "--judge-attempts",
        type=int,
        default=2,
        help="asks per rating: greedy first, then sampled while no rating can be read",
    )
    p.add_argument(
        "--judge-concurrency",
        type=int,
        default=1,
        help="judge requests in flight (more helps a hosted judge, not one small engine)",
    )
    p.add_argument(
        "--allow-context-to-cloud",
        action="store_true",
        help=f"needed for the {CONTEXT_TO_CLOUD} mode, which sends private context away",
    )
    p.set_defaults(handler=_run_or_stop)
    return p


def main(argv: list[str]) -> int:
    """Run through the edge CLI's runner: a user error is one line on stderr, exit 2."""
    return run_parser(parser(), argv)


def _run_or_stop(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"cogenesis: stopped; rerun with --out {args.out} to continue", file=sys.stderr)
        return 130


def parse_modes(text: str, allow_context: bool) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown or not modes:
        raise CliError(f"unknown mode(s) {unknown or text!r}; choose from {', '.join(ALL_MODES)}")
    if CONTEXT_TO_CLOUD in modes and not allow_context:
        raise CliError(
            f"{CONTEXT_TO_CLOUD} sends private context to the cloud; it runs only with "
            "--allow-context-to-cloud"
        )
    return modes


def load_records(path: Path, tasks: int | None) -> list[dict]:
    from edge_agent.store import DatasetFormatError
    from edge_agent.store.cogenesis_format import parse_item

    if not path.is_file():
        raise CliError(f"no such file: {path}")
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: not a JSON file: {exc}") from exc
    if not isinstance(records, list):
        raise CliError(f"{path}: a CoGenesis dataset is a JSON list of items")
    records = records[:tasks] if tasks else records
    try:
        for index, record in enumerate(records):
            parse_item(index, record, str(path))
    except DatasetFormatError as exc:
        raise CliError(str(exc)) from exc
    with_reference = [r for r in records if len(r.get("conversations", [])) == 2]
    if not with_reference:
        raise CliError(f"{path}: no task with a reference answer")
    return with_reference


def _run(args: argparse.Namespace) -> int:
    if args.tasks is not None and args.tasks < 1:
        raise CliError("--tasks must be at least 1")
    modes = parse_modes(args.modes, args.allow_context_to_cloud)
    records = load_records(args.dataset, args.tasks)

    from edge_agent.settings import EdgeSettings
    from research.evaluate.harness import (
        EvalConfig,
        EvalError,
        check_out_dir,
        dataset_digest,
        run_eval,
    )
    from research.evaluate.modes import ModeRunner
    from research.evaluate.report import write_report
    from research.judge import Judge
    from research.llm import ChatLlm, LlmError, api_key_from_env
    from research.services import SetupError, open_services

    started = time.perf_counter()
    overrides = {"cloud_url": args.cloud_url, "model_path": args.model}
    settings = EdgeSettings(
        db_url=f"sqlite:///{args.out.resolve() / 'edge.db'}",
        max_tokens=args.max_tokens,
        # A judge or another run may keep a small cloud busy: wait rather than degrade.
        cloud_timeout_s=900,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    if CONTEXT_TO_CLOUD in modes:
        print(WARNING.format(url=settings.cloud_url), file=sys.stderr)
    identity = {
        "dataset": dataset_digest(records),
        "judge_model": args.judge_model,
        "max_tokens": args.max_tokens,
        "nll_tokens": args.nll_tokens,
        "model": str(args.model or "default"),
    }
    try:
        check_out_dir(args.out, identity)
        judge_key = _judge_key(args, settings, api_key_from_env)
        services = open_services(settings)  # the cloud answers and shares our vocabulary
    except (EvalError, LlmError, SetupError) as exc:
        raise CliError(str(exc)) from exc
    info = services.cloud_info
    runner = ModeRunner(
        services,
        cloud_url=settings.cloud_url,
        cloud_token=settings.cloud_token,
        cloud_model=info.model_id,
        max_tokens=args.max_tokens,
    )
    judge = Judge(
        ChatLlm(
            args.judge_url,
            args.judge_model,
            api_key=judge_key,
            cache_path=args.out / "judge_cache.jsonl",
        ),
        max_tokens=args.judge_max_tokens,
        attempts=args.judge_attempts,
    )
    config = EvalConfig(
        modes=modes,
        max_tokens=args.max_tokens,
        nll_tokens=args.nll_tokens,
        judge_concurrency=args.judge_concurrency,
        skip_nll=args.no_nll,
    )
    try:
        data = run_eval(
            services,
            runner,
            judge,
            records,
            config,
            args.out,
            cloud_url=settings.cloud_url,
            cloud_token=settings.cloud_token,
            progress=sys.stderr.isatty(),
        )
    finally:
        runner.close()
    meta = {
        "dataset": str(args.dataset),
        "tasks": len(records),
        "modes": list(modes),
        "max_tokens": args.max_tokens,
        "nll_tokens": args.nll_tokens,
        "judge_url": args.judge_url,
        "judge_model": args.judge_model,
        "cloud_model": info.model_id,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_report(data, modes, args.out, meta)
    print((args.out / "report.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out / 'report.md'}, report.json, scores.png")
    return 0


def _judge_key(args: argparse.Namespace, settings, api_key_from_env) -> str:
    """The judge's key. The cloud's own token goes only to the cloud itself."""
    if args.judge_api_key_env:
        return api_key_from_env(args.judge_api_key_env)
    same_host = args.judge_url.rstrip("/").removesuffix("/v1") == settings.cloud_url.rstrip("/")
    if same_host and settings.cloud_token:
        return settings.cloud_token
    return api_key_from_env(None)
