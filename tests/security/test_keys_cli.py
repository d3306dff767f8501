"""`cogenesis keys create|list|revoke`: the key printed once, hashed in the store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cogenesis.cli import main
from edge_agent.store import open_store
from edge_agent.store.keys import split_key
from edge_agent.store.schemas import ProfileIn


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'edge.db'}"
    with open_store(url) as store:
        store.profiles.create_user(ProfileIn(id="u_ada", name="Ada Moss"))
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_key_last_and_stores_only_its_hash(capsys, db) -> None:
    code, out, _ = run(capsys, "keys", "create", "--user", "u_ada", "--name", "notes", "--db", db)

    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("cgk_")
    with open_store(db) as store:
        key = store.keys.verify(secret)
        assert key is not None and (key.scope, key.user_id, key.label) == ("user", "u_ada", "notes")
        dumped = json.dumps([k.model_dump(mode="json") for k in store.keys.list()])
    assert split_key(secret)[1] not in dumped  # the secret itself may hold "_"


def test_list_shows_id_label_scope_created_and_last_used_never_the_secret(capsys, db) -> None:
    secret = run(capsys, "keys", "create", "--admin", "--name", "me", "--db", db)[1].split()[-1]
    run(capsys, "keys", "create", "--user", "u_ada", "--db", db)
    with open_store(db) as store:
        store.keys.verify(secret)

    code, out, _ = run(capsys, "keys", "list", "--db", db)

    assert code == 0
    header, admin_row, user_row = out.strip().splitlines()
    assert header.split() == ["ID", "SCOPE", "USER", "LABEL", "CREATED", "LAST", "USED", "STATUS"]
    assert "admin" in admin_row and "me" in admin_row and "never" not in admin_row
    assert "u_ada" in user_row and "never" in user_row and "active" in user_row
    assert split_key(secret)[1] not in out
    listed = json.loads(run(capsys, "keys", "list", "--json", "--db", db)[1])
    assert [k["scope"] for k in listed] == ["admin", "user"]


def test_revoke_stops_the_key(capsys, db) -> None:
    out = run(capsys, "keys", "create", "--admin", "--db", db)[1]
    key_id = out.split()[1]
    secret = out.split()[-1]

    code, out, _ = run(capsys, "keys", "revoke", key_id, "--db", db)

    assert code == 0 and key_id in out
    with open_store(db) as store:
        assert store.keys.verify(secret) is None
    assert "revoked" in run(capsys, "keys", "list", "--db", db)[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "--user", "u_nobody"], "no profile with id"),
        (["keys", "revoke", "k_nothere"], "no API key with id"),
        (["keys", "create", "--admin", "--name", "two\nlines"], "single line"),
        (["keys", "create", "--user", "not an id!"], "user_id"),
    ],
)
def test_mistakes_exit_2_with_one_line(capsys, db, argv, message) -> None:
    code, out, err = run(capsys, *argv, "--db", db)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_create_needs_user_or_admin(capsys, db) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["keys", "create", "--db", db])
    assert caught.value.code == 2


def test_the_keys_command_runs_from_the_console(tmp_path: Path, db) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cogenesis", "keys", "create", "--admin", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("cgk_")
