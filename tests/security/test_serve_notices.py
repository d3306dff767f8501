"""What `cogenesis edge serve` says about access when it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cogenesis.servers import free_port
from edge_agent.auth.banner import AUTH_OFF_LINE
from edge_agent.store import open_store
from edge_agent.store.schemas import KeyIn


def serve_output(db: str, env: dict[str, str], timeout: float = 180) -> str:
    """Start `cogenesis edge serve`, read stderr until uvicorn runs, stop it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cogenesis",
            "edge",
            "serve",
            "--port",
            str(free_port()),
            "--db",
            db,
        ],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if "Uvicorn running" in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found.wait(timeout)
    process.terminate()
    process.wait(timeout=30)
    return "".join(seen)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


def test_with_no_keys_serve_says_how_to_create_the_first(db: str) -> None:
    err = serve_output(db, {})
    assert "no API keys yet" in err and "Uvicorn running" in err
    assert "cogenesis keys create --admin" in err and "cogenesis keys create --user" in err


def test_with_a_key_there_is_no_such_notice(db: str) -> None:
    with open_store(db) as store:
        store.keys.create(KeyIn(scope="admin"))
    err = serve_output(db, {})
    assert "Uvicorn running" in err and "no API keys yet" not in err


def test_with_keys_off_serve_says_so_in_one_line(db: str) -> None:
    err = serve_output(db, {"COGENESIS_EDGE_AUTH": "off"})
    assert AUTH_OFF_LINE + "\n" in err


def test_keys_off_is_refused_beyond_loopback(db: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cogenesis", "edge", "serve", "--host", "0.0.0.0", "--db", db],
        env={**os.environ, "COGENESIS_EDGE_AUTH": "off"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2
    assert "COGENESIS_EDGE_AUTH=off is for experiments on loopback" in done.stderr
    assert "Traceback" not in done.stderr
