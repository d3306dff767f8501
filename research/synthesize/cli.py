"""`cogenesis data synthesize`: build a CoGenesis-format dataset with any OpenAI-compatible LLM.

    cogenesis data synthesize --llm-url http://127.0.0.1:8600 --llm-model M \\
        [--api-key-env VAR] --groups 2 --users-per-group 3 --tasks-per-user 4 \\
        --history-per-user 3 --seed 0 --out data/synthetic.json

Writes OUT and OUT's .train/.dev/.test splits; checkpoints in OUT.work/ (or --work-dir),
so that a rerun continues where the last one stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.cli import CliError, run_parser
from research.llm import ChatLlm, LlmError, api_key_from_env
from research.synthesize.dataset import assemble, write_dataset
from research.synthesize.pipeline import (
    Pipeline,
    StepBudgets,
    Steps,
    SynthesisConfig,
    SynthesisError,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cogenesis data synthesize",
        description="Build a dataset of context-aware writing tasks (CoGenesis format) in "
        "four LLM steps: group portraits, profiles, writing tasks, texts.",
    )
    p.add_argument("--llm-url", required=True, help="base URL of an OpenAI-compatible API")
    p.add_argument("--llm-model", required=True, help="model name to ask for")
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default: OPENAI_API_KEY if set)",
    )
    p.add_argument("--groups", type=_positive, required=True)
    p.add_argument("--users-per-group", type=_positive, required=True)
    p.add_argument("--tasks-per-user", type=_positive, required=True)
    p.add_argument("--history-per-user", type=_non_negative, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="the dataset file to write (.json)")
    p.add_argument("--work-dir", type=Path, help="checkpoints and cache (default: OUT.work/)")
    p.add_argument("--concurrency", type=_positive, default=4, help="requests in flight")
    p.add_argument("--attempts", type=_positive, default=4, help="tries per request on junk")
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--max-tokens", type=_positive, help="cap on every step's reply length")
    p.add_argument("--min-text-chars", type=_positive, default=200, help="shortest text kept")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.set_defaults(handler=_synthesize)
    return p


def main(argv: list[str]) -> int:
    """Run through the edge CLI's runner: a user error is one line on stderr, exit 2."""
    return run_parser(parser(), argv)


def _synthesize(args: argparse.Namespace) -> int:
    config = SynthesisConfig(
        groups=args.groups,
        users_per_group=args.users_per_group,
        tasks_per_user=args.tasks_per_user,
        history_per_user=args.history_per_user,
        seed=args.seed,
        attempts=args.attempts,
        concurrency=args.concurrency,
        temperature=args.temperature,
        budgets=StepBudgets().capped(args.max_tokens),
        min_text_chars=args.min_text_chars,
    )
    work = args.work_dir or args.out.with_name(args.out.name + ".work")
    try:
        llm = ChatLlm(
            args.llm_url,
            args.llm_model,
            api_key=api_key_from_env(args.api_key_env),
            cache_path=work / "responses.jsonl",
            timeout_s=args.timeout,
        )
        steps = Pipeline(llm, config, work, progress=sys.stderr.isatty()).run()
    except (LlmError, SynthesisError) as exc:
        raise CliError(f"{exc} (finished requests are kept in {work})") from exc
    except KeyboardInterrupt:
        print(f"cogenesis: stopped; rerun to continue from {work}", file=sys.stderr)
        return 130
    dataset = assemble(steps)
    print(summary(steps, llm))
    for left in dataset.left_out:
        print(f"left out {left['user']}: {left['reason']}")
    try:
        paths = write_dataset(dataset, args.out, args.seed)
    except ValueError as exc:  # a result (nothing worth writing), not a usage error
        print(f"cogenesis: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"wrote {path}  ({name})")
    print(f"{len(dataset.users)} users, {len(dataset.items)} tasks")
    return 0


def summary(steps: Steps, llm: ChatLlm) -> str:
    lines = [f"{'step':<8}{'keys':>6}{'accepted':>10}{'failed':>8}{'requests':>10}{'junk':>6}"]
    for name, s in steps.stats.items():
        lines.append(
            f"{name:<8}{s.keys:>6}{s.accepted:>10}{s.failed:>8}{s.attempts:>10}{s.rejected:>6}"
        )
        for reason, count in s.reasons.most_common(3):
            lines.append(f"    junk x{count}: {reason}")
    lines.append(
        f"near-duplicates removed: {len(steps.duplicates['users'])} users, "
        f"{len(steps.duplicates['tasks'])} tasks"
    )
    lines.append(f"requests sent now: {llm.requests_sent} (the rest came from the cache)")
    return "\n".join(lines)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return number
