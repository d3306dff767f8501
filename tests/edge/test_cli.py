"""The `cogenesis` command: store, ledger and dispatcher, with real SQLite files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cogenesis.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "cogenesis" / "examples" / "example_profile.json"


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_prints_stable_ids_and_is_idempotent(capsys, db) -> None:
    code, out, _ = run(capsys, "profiles", "import", str(EXAMPLE), "--db", db)
    assert code == 0
    first_ids = [line.split()[0] for line in out.splitlines()]
    assert first_ids and all(i.startswith("u_") for i in first_ids)
    code, out, _ = run(capsys, "profiles", "import", str(EXAMPLE), "--db", db)
    assert [line.split()[0] for line in out.splitlines()] == first_ids
    code, out, _ = run(capsys, "profiles", "list", "--db", db)
    assert [line.split()[0] for line in out.splitlines()] == first_ids


def test_export_round_trips_the_dataset_format(capsys, db, tmp_path) -> None:
    run(capsys, "profiles", "import", str(EXAMPLE), "--db", db)
    out_file = tmp_path / "export.json"
    code, _, _ = run(capsys, "profiles", "export", "--out", str(out_file), "--db", db)
    assert code == 0
    exported = json.loads(out_file.read_text())
    original = json.loads(EXAMPLE.read_text())
    assert exported[0]["additional_profile"] == original[0]["additional_profile"]
    assert [p["text"] for p in exported[0]["profile"]] == [
        p["text"] for p in original[0]["profile"]
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "JSON"),
        ('{"a": 1}', "list"),
        (
            '[{"tid": "1", "additional_profile": "Age: 3", "profile": [], "conversations": []}]',
            "Name",
        ),
    ],
)
def test_a_bad_dataset_file_is_refused_and_nothing_is_written(
    capsys, db, tmp_path, content, message
) -> None:
    run(capsys, "profiles", "import", str(EXAMPLE), "--db", db)
    before = run(capsys, "profiles", "list", "--db", db)[1]
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = run(capsys, "profiles", "import", str(bad), "--db", db)
    assert code == 2
    assert message.lower() in err.lower()
    assert "nothing was imported" in err
    assert "Traceback" not in err
    assert run(capsys, "profiles", "list", "--db", db)[1] == before


@pytest.mark.parametrize(
    "argv",
    [
        ["profiles", "import", "/nonexistent/file.json"],
        ["profiles", "show", "u_nobody"],
        ["profiles", "delete", "u_nobody"],
        ["profiles", "export", "--user", "u_nobody"],
        ["ledger", "show", "--limit", "0"],
    ],
)
def test_user_errors_exit_2_with_a_message(capsys, db, argv) -> None:
    code, _, err = run(capsys, *argv, "--db", db)
    assert code == 2
    assert err.startswith("cogenesis:")
    assert "Traceback" not in err


def test_argument_errors_exit_2(capsys, db) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ledger", "show", "--since", "yesterday-ish", "--db", db])
    assert exit_info.value.code == 2
    assert "not a time" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_delete_removes_the_user_and_optionally_the_ledger(capsys, db) -> None:
    from edge_agent.store import open_store

    _, out, _ = run(capsys, "profiles", "import", str(EXAMPLE), "--db", db)
    user = out.split()[0]
    store = open_store(db)
    entry = store.ledger.begin(
        user_id=user, mode="sketch", endpoint="/v1/sketch", method="POST", payload=b"{}"
    )
    store.ledger.finish(entry, status="ok", http_status=200, bytes_down=2, duration_ms=1.0)
    code, out, _ = run(capsys, "profiles", "delete", user, "--include-ledger", "--db", db)
    assert code == 0
    assert run(capsys, "profiles", "list", "--db", db)[1] == ""
    assert store.ledger.query(user_id=user)[1] == 0


def test_protocol_schema_lists_every_wire_message(capsys) -> None:
    code, out, _ = run(capsys, "protocol", "schema")
    schema = json.loads(out)
    assert code == 0
    assert {"SketchRequest", "SessionStepRequest", "InfoResponse"} <= set(schema["messages"])
    step = schema["messages"]["SessionStepRequest"]
    assert step["additionalProperties"] is False


def test_the_console_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cogenesis", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "cogenesis demo" in done.stdout or "demo" in done.stdout


def test_rest_import_and_export(edge) -> None:
    items = json.loads(EXAMPLE.read_text())
    reply = edge.http.post(f"{edge.url}/v1/profiles/import", json=items, timeout=30)
    assert reply.status_code == 201, reply.text
    user = reply.json()["users"][0]["id"]
    exported = edge.http.get(f"{edge.url}/v1/profiles/export", params={"user": user}).json()
    assert exported[0]["additional_profile"] == items[0]["additional_profile"]
    bad = edge.http.post(f"{edge.url}/v1/profiles/import", json=[{"profile": []}], timeout=30)
    assert bad.status_code == 400
    assert "nothing was imported" in bad.json()["error"]["message"]
    assert len(edge.http.get(f"{edge.url}/v1/profiles").json()["data"]) == 1
