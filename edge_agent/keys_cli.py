"""``cogenesis keys create|list|revoke``: the local API keys apps call the edge with.

A new key is printed once, as the last line of stdout; the store keeps only its hash.
The commands are a group of the edge's CLI (edge_agent/cli.py), in its style.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from edge_agent.settings import EdgeSettings
from shared_protocol.settings_cli import load_settings


class KeyCommandError(Exception):
    """A mistake in a keys command: one line on stderr, exit code 2 (edge_agent.cli)."""


def add_key_commands(
    groups: argparse._SubParsersAction, setting_flags: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The ``keys`` group of the edge's CLI; ``setting_flags`` adds the store's flags."""
    commands = groups.add_parser("keys", help="local API keys").add_subparsers(dest="command")

    create = commands.add_parser("create", help="create a key (printed once)")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID", help="a user key: acts as this profile")
    who.add_argument(
        "--admin", action="store_true", help="an admin key: every profile, ledger and key"
    )
    create.add_argument("--name", metavar="LABEL", help="what the key is for, e.g. an app")
    create.set_defaults(handler=_create)

    listing = commands.add_parser("list", help="show every key (never the secret)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)

    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("id", help="the key's id, as `cogenesis keys list` shows it")
    revoke.set_defaults(handler=_revoke)

    for command in (create, listing, revoke):
        setting_flags(command)


def _store(args: argparse.Namespace):
    from edge_agent.store import StoreError, open_store

    try:
        return open_store(load_settings(EdgeSettings, args).db_url)
    except StoreError as exc:
        raise KeyCommandError(str(exc)) from exc


def _create(args: argparse.Namespace) -> int:
    from edge_agent.store import UserNotFound
    from edge_agent.store.schemas import KeyIn

    try:
        request = KeyIn(scope="admin" if args.admin else "user", user_id=args.user, label=args.name)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'key'}: {e['msg']}" for e in exc.errors()
        )
        raise KeyCommandError(problems) from exc
    with _store(args) as store:
        try:
            new = store.keys.create(request)
        except UserNotFound as exc:
            raise KeyCommandError(str(exc)) from exc
    who = "admin" if new.key.scope == "admin" else f"user {new.key.user_id}"
    label = f", {new.key.label!r}" if new.key.label else ""
    print(f"created {new.key.id} ({who}{label}); the key is shown only now, keep it safe:")
    print(new.secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        keys = store.keys.list()
    if args.json:
        print(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))
        return 0
    if not keys:
        print("no keys; create one with `cogenesis keys create --admin`")
        return 0
    rows = [("ID", "SCOPE", "USER", "LABEL", "CREATED", "LAST USED", "STATUS")]
    rows += [
        (
            k.id,
            k.scope,
            k.user_id or "-",
            k.label or "-",
            _when(k.created_at),
            _when(k.last_used_at),
            f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active",
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from edge_agent.store import KeyNotFound

    with _store(args) as store:
        try:
            key = store.keys.revoke(args.id)
        except KeyNotFound as exc:
            raise KeyCommandError(str(exc)) from exc
    print(f"revoked {key.id}")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"
