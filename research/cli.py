"""The research commands: `cogenesis fusion train` and `cogenesis eval nll`.

`cogenesis/cli.py` dispatches here; the edge's own CLI knows nothing of research. Every
user error ends as a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.cli import FLAG_ALIASES, CliError, run_parser
from edge_agent.settings import EdgeSettings
from edge_agent.store import DatasetFormatError
from research.dataset import load_tasks
from shared_protocol.settings_cli import add_settings_flags, load_settings

if TYPE_CHECKING:
    from edge_agent.app import EdgeServices

# The settings a research run reads from flags; all others come from COGENESIS_EDGE_*.
SETTING_FLAGS = ["cloud_url", "model_path", "db_url"]


def main(argv: list[str] | None = None) -> int:
    return run_parser(_parser(), argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cogenesis", description="CoGenesis research tools")
    groups = parser.add_subparsers(dest="group")

    fusion = groups.add_parser("fusion", help="logits fusion").add_subparsers(dest="command")
    train = fusion.add_parser("train", help="train the learned gate on a CoGenesis dataset")
    train.add_argument("file", type=Path)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--max-tasks", type=int, default=40)
    add_settings_flags(train, EdgeSettings, SETTING_FLAGS, aliases=FLAG_ALIASES)
    train.set_defaults(handler=_fusion_train)

    evaluate = groups.add_parser("eval", help="quality evaluation").add_subparsers(dest="command")
    nll = evaluate.add_parser("nll", help="teacher-forced NLL of the references")
    nll.add_argument("file", type=Path)
    nll.add_argument("--max-tasks", type=int, default=20)
    nll.add_argument("--out", type=Path, default=Path("nll.json"))
    add_settings_flags(nll, EdgeSettings, SETTING_FLAGS, aliases=FLAG_ALIASES)
    nll.set_defaults(handler=_eval_nll)
    return parser


def _open(args: argparse.Namespace) -> EdgeServices:
    """Check the dataset first (a malformed file fails before the model loads), then wire
    the edge's services as `edge serve` does."""
    from research.services import SetupError, open_services

    if args.max_tasks < 1:
        raise CliError("--max-tasks must be at least 1")
    settings = load_settings(EdgeSettings, args)
    try:
        load_tasks(args.file)
    except DatasetFormatError as exc:
        raise CliError(f"{exc} (nothing was evaluated)") from None
    try:
        return open_services(settings)
    except SetupError as exc:
        raise CliError(str(exc)) from None


@contextmanager
def _too_few_tasks(path: Path) -> Iterator[None]:
    """No usable task (every one skipped) is the user's error: one line, with reasons."""
    try:
        yield
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None


def _fusion_train(args: argparse.Namespace) -> int:
    from research.gate_training import train_gate_from_dataset

    services = _open(args)
    with _too_few_tasks(args.file):
        report = train_gate_from_dataset(
            args.file,
            services.pool.primary,
            services.cloud,
            args.out,
            args.max_tasks,
            progress=sys.stderr.isatty(),
        )
    print(report)
    return 0


def _eval_nll(args: argparse.Namespace) -> int:
    from research.nll import evaluate_nll

    services = _open(args)
    with _too_few_tasks(args.file):
        evaluate_nll(
            args.file,
            services.pool.primary,
            services.cloud,
            max_tasks=args.max_tasks,
            progress=sys.stderr.isatty(),
            out_path=args.out,
        )
    return 0
