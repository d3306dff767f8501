"""The edge's commands: serve, profiles, keys, ledger (research commands are in research/cli.py).

Setting flags are derived from EdgeSettings (shared_protocol.settings_cli, as the cloud's
from CloudSettings). Every user error, a bad setting included, ends as a one-line message
on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from edge_agent.keys_cli import KeyCommandError, add_key_commands
from edge_agent.settings import EdgeSettings
from shared_protocol.hosts import is_loopback
from shared_protocol.settings_cli import SettingsError, add_settings_flags, load_settings

# Every setting is a flag but the token: argv is visible to other users of the machine.
SERVE_SETTINGS = [name for name in EdgeSettings.model_fields if name != "cloud_token"]
FLAG_ALIASES = {"db_url": ["--db"], "model_path": ["--model"]}


class CliError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    return run_parser(_parser(), argv)


def run_parser(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse and run a command whose handler is in `args.handler`; user errors: one line."""
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (CliError, KeyCommandError, SettingsError) as exc:
        print(f"cogenesis: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cogenesis", description="CoGenesis edge agent")
    groups = parser.add_subparsers(dest="group")

    edge = groups.add_parser("edge", help="the edge agent").add_subparsers(dest="command")
    serve = edge.add_parser(
        "serve",
        help="run the local endpoint",
        description="Flags override COGENESIS_EDGE_* variables, which override defaults. "
        "The cloud token comes from env COGENESIS_CLOUD_TOKEN only.",
    )
    _setting_flags(serve, SERVE_SETTINGS)
    serve.set_defaults(handler=_serve)

    profiles = groups.add_parser("profiles", help="stored users").add_subparsers(dest="command")
    imp = profiles.add_parser("import", help="import users from a CoGenesis-format file")
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--merge",
        action="store_true",
        help="two items about one person that disagree: keep the first one's fields "
        "(and say so) instead of refusing the file",
    )
    _setting_flags(imp)
    imp.set_defaults(handler=_profiles_import)
    exp = profiles.add_parser("export", help="export users in the CoGenesis format")
    exp.add_argument("--user", action="append", help="a user id (repeatable; default all)")
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    _setting_flags(exp)
    exp.set_defaults(handler=_profiles_export)
    lst = profiles.add_parser("list", help="list stored users")
    _setting_flags(lst)
    lst.set_defaults(handler=_profiles_list)
    show = profiles.add_parser("show", help="show one user")
    show.add_argument("user")
    _setting_flags(show)
    show.set_defaults(handler=_profiles_show)
    delete = profiles.add_parser("delete", help="delete a user and all their data")
    delete.add_argument("user")
    delete.add_argument(
        "--include-ledger",
        action="store_true",
        help="also delete the ledger of what was sent for this user",
    )
    _setting_flags(delete)
    delete.set_defaults(handler=_profiles_delete)

    add_key_commands(groups, _setting_flags)

    ledger = groups.add_parser("ledger", help="what left the device").add_subparsers(dest="command")
    lshow = ledger.add_parser("show", help="print ledger entries")
    lshow.add_argument("--user")
    lshow.add_argument("--mode")
    lshow.add_argument("--since", type=_timestamp, help="ISO time or unix seconds")
    lshow.add_argument("--until", type=_timestamp, help="ISO time or unix seconds")
    lshow.add_argument("--limit", type=int, default=20)
    lshow.add_argument("--offset", type=int, default=0)
    lshow.add_argument("--json", action="store_true", help="machine-readable output")
    _setting_flags(lshow)
    lshow.set_defaults(handler=_ledger_show)
    verify = ledger.add_parser(
        "verify",
        help="check the hash chain, then re-scan every payload for private terms",
    )
    verify.add_argument("--user", help="re-scan only this user's payloads")
    verify.add_argument("--head", help="a head printed by `ledger head` earlier: must be there")
    verify.add_argument(
        "--chain-only", action="store_true", help="check the chain, skip the re-scan"
    )
    _setting_flags(verify, ["db_url", "model_path"])
    verify.set_defaults(handler=_ledger_verify)
    head = ledger.add_parser("head", help="print the chain's head, to keep somewhere else")
    _setting_flags(head, ["db_url"])
    head.set_defaults(handler=_ledger_head)

    return parser


def _setting_flags(parser: argparse.ArgumentParser, fields: list[str] | None = None) -> None:
    """Flags for the settings a command reads; the private store's by default."""
    add_settings_flags(parser, EdgeSettings, fields or ["db_url"], aliases=FLAG_ALIASES)


def _timestamp(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {value!r}") from exc


def _settings(args: argparse.Namespace) -> EdgeSettings:
    return load_settings(EdgeSettings, args)


def _store(args: argparse.Namespace):
    from edge_agent.store import StoreError, open_store

    try:
        return open_store(_settings(args).db_url)
    except StoreError as exc:
        raise CliError(str(exc)) from exc


# --- serve -----------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from edge_agent.app import create_app
    from edge_agent.auth.banner import UnsafeAuthMode, check_auth_mode, startup_notice
    from edge_agent.slm import ModelLoadError
    from shared_protocol.defaults import DefaultModelMissing

    settings = _settings(args)
    if not is_loopback(settings.host):
        print(
            f"cogenesis: warning: the edge agent listens on {settings.host}; any machine "
            "that reaches it can try its keys (list the names it answers to in "
            "COGENESIS_EDGE_ALLOWED_HOSTS)",
            file=sys.stderr,
        )
    try:
        check_auth_mode(settings)
        app = create_app(settings)
    except (ModelLoadError, DefaultModelMissing, UnsafeAuthMode) as exc:
        raise CliError(str(exc)) from exc
    for line in startup_notice(settings, app.state.services.store.keys):
        print(line, file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


# --- profiles --------------------------------------------------------------------------


def _profiles_import(args: argparse.Namespace) -> int:
    from edge_agent.store.cogenesis_format import DatasetFormatError, import_file

    if not args.file.is_file():
        raise CliError(f"no such file: {args.file}")
    store = _store(args)
    try:
        report = import_file(
            args.file, store.profiles, progress=sys.stderr.isatty(), merge=args.merge
        )
    except DatasetFormatError as exc:
        raise CliError(f"{exc} (nothing was imported)") from exc
    for warning in report.warnings:
        print(f"cogenesis: warning: {warning}", file=sys.stderr)
    for user in report.users:
        print(f"{user.id}  {user.name}")
    print(f"imported {len(report.users)} users from {args.file}", file=sys.stderr)
    return 0


def _profiles_export(args: argparse.Namespace) -> int:
    from edge_agent.store import UnexportableProfile, UserNotFound
    from edge_agent.store.cogenesis_format import export_users

    store = _store(args)
    try:
        data = export_users(store.profiles, args.user)
    except (UserNotFound, UnexportableProfile) as exc:
        raise CliError(str(exc)) from exc
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)  # never leave a half-written export behind
    else:
        print(text)
    return 0


def _profiles_list(args: argparse.Namespace) -> int:
    for user in _store(args).profiles.list_users():
        print(f"{user.id}  {user.name}")
    return 0


def _profiles_show(args: argparse.Namespace) -> int:
    from edge_agent.store.repository import UserNotFound

    try:
        user = _store(args).profiles.get_user(args.user)
    except UserNotFound as exc:
        raise CliError(f"unknown user {args.user!r}") from exc
    print(json.dumps(user.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def _profiles_delete(args: argparse.Namespace) -> int:
    from edge_agent.store.repository import UserNotFound

    store = _store(args)
    try:
        store.profiles.get_user(args.user)
    except UserNotFound as exc:
        raise CliError(f"unknown user {args.user!r}") from exc
    store.profiles.delete_user(args.user, include_ledger=args.include_ledger)
    kept = "" if args.include_ledger else " (ledger kept; --include-ledger deletes it)"
    print(f"deleted {args.user}{kept}")
    return 0


# --- ledger ----------------------------------------------------------------------------


def _ledger_show(args: argparse.Namespace) -> int:
    from edge_agent.store import InvalidQuery

    try:
        rows, total = _store(args).ledger.query(
            user_id=args.user,
            mode=args.mode,
            since=args.since,
            until=args.until,
            limit=args.limit,
            offset=args.offset,
        )
    except InvalidQuery as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(
            json.dumps(
                {"total": total, "data": [r.model_dump(mode="json") for r in rows]}, indent=2
            )
        )
        return 0
    print(f"{total} entries; showing {len(rows)} from {args.offset}")
    for row in rows:
        item = row.model_dump(mode="json")
        print(
            f"\n#{item['id']} {item['created_at']} user={item['user_id']} mode={item['mode']}"
            f" {item['method']} {item['endpoint']} -> {item['status']} "
            f"({item['bytes_up']} B up, {_down(item['bytes_down'])} down)"
        )
        if item.get("error"):
            print(f"  error: {item['error']}")
        if item.get("guard_policy"):
            print(f"  guard: {item['guard_policy']} {json.dumps(item.get('guard_findings'))}")
        if item.get("payload"):
            print(f"  sent: {item['payload']}")
    return 0


def _down(bytes_down: int | None) -> str:
    return "? B" if bytes_down is None else f"{bytes_down} B"


def _ledger_verify(args: argparse.Namespace) -> int:
    store = _store(args)
    chain = store.ledger.verify(expected_head=args.head)
    for problem in chain.problems:
        print(f"BAD {problem.describe()}")
    if chain.expected_head_found is False:
        print(f"BAD the head {args.head} is not in the chain: links after it were cut off")
    first_bad = chain.first.describe() if chain.first else "the head given is missing"
    verdict = "intact" if chain.ok else f"BROKEN, first bad: {first_bad}"
    print(
        f"chain: {chain.links} links over {chain.entries} entries "
        f"({chain.erased} erased on request), head {chain.head}: {verdict}"
    )
    if args.chain_only:
        return 0 if chain.ok else 1
    from edge_agent.guard.verify import verify_ledger
    from edge_agent.slm import ModelLoadError, load_detokenizer
    from shared_protocol.defaults import DefaultModelMissing, default_gguf_path

    try:
        detokenize = load_detokenizer(_settings(args).model_path or default_gguf_path())
    except (ModelLoadError, DefaultModelMissing) as exc:
        raise CliError(str(exc)) from exc
    report = verify_ledger(store, user_id=args.user, detokenize=detokenize)
    for hit in report.hits:
        print(f"HIT entry #{hit.entry_id} user={hit.user_id}: {hit.kind} ({hit.description})")
    print(f"checked {report.entries} entries: {len(report.hits)} hits")
    return 0 if chain.ok and not report.hits else 1


def _ledger_head(args: argparse.Namespace) -> int:
    seq, head = _store(args).ledger.head()
    print(head)
    print(
        f"link {seq} of the ledger's chain; keep it elsewhere and check it later with "
        "`cogenesis ledger verify --head HASH`",
        file=sys.stderr,
    )
    return 0
