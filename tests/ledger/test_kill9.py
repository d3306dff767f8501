"""kill -9 during a logits request: after a restart no row says 'sending', the chain
verifies, nothing recorded is lost, and the cloud session the request held is closed.

The edge runs as a real subprocess (`cogenesis edge serve`) against a real cloud. The
test freezes it (SIGSTOP) the moment a step call is being sent, checks that call is
still in flight, and only then kills it (SIGKILL), so the crash lands mid-send.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from edge_agent.cli import main as edge_cli
from edge_agent.store import open_store
from edge_agent.store.schemas import KeyIn, ProfileIn
from tests.ledger.conftest import CLOUD_TOKEN, CloudApp
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
STEP_IN_FLIGHT = (
    "SELECT id FROM ledger_entries WHERE status = 'sending'"
    " AND endpoint LIKE '/v1/sessions/%/step' ORDER BY id DESC LIMIT 1"
)

pytestmark = pytest.mark.slow


class EdgeProcess:
    def __init__(self, db_url: str, cloud_url: str, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "COGENESIS_HOME": str(home),
            "COGENESIS_CLOUD_TOKEN": CLOUD_TOKEN,
            "COGENESIS_EDGE_WORKERS": "1",
            "COGENESIS_EDGE_N_THREADS": "1",
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        }
        command = [sys.executable, "-m", "cogenesis", "edge", "serve", "--port", str(self.port)]
        command += ["--cloud-url", cloud_url, "--db", db_url]
        self.log = (home / f"edge-{self.port}.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the edge exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the edge did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def chat_in_background(edge: EdgeProcess, user_id: str, key: str) -> threading.Thread:
    body = {
        "model": "cogenesis-logits",
        "user": user_id,
        "messages": [{"role": "user", "content": "Write a note to my neighbour about tulips."}],
        "max_tokens": 96,
    }

    def send() -> None:
        try:
            httpx.post(
                f"{edge.url}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=300,
            )
        except httpx.HTTPError:
            pass  # the edge dies under it: that is the point

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def kill_mid_step(edge: EdgeProcess, db_file: Path, request: threading.Thread) -> int:
    """SIGKILL the edge while a step call is 'sending'; returns that row's id."""
    pid = edge.process.pid
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as reader:
        while request.is_alive():
            row = reader.execute(STEP_IN_FLIGHT).fetchone()
            if row is None:
                time.sleep(0.001)
                continue
            os.kill(pid, signal.SIGSTOP)
            status = reader.execute(
                "SELECT status FROM ledger_entries WHERE id = ?", (row[0],)
            ).fetchone()
            if status == ("sending",):
                os.kill(pid, signal.SIGKILL)
                edge.process.wait(timeout=30)
                return row[0]
            os.kill(pid, signal.SIGCONT)  # it ended in between: catch the next one
    raise AssertionError("the request ended before a step could be caught in flight")


def snapshot(db_file: Path) -> dict[int, tuple[str, str, bytes, str]]:
    """Every ledger row: method, endpoint, exact payload, status."""
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as reader:
        rows = reader.execute(
            "SELECT id, method, endpoint, payload, status FROM ledger_entries"
        ).fetchall()
    return {row[0]: (row[1], row[2], bytes(row[3]), row[4]) for row in rows}


def received_calls(cloud: CloudApp) -> Counter[tuple[str, str, bytes]]:
    """Every call the cloud received: method, path and exact body."""
    lines = cloud.received.read_text().splitlines() if cloud.received.exists() else []
    records = [json.loads(line) for line in lines if line]
    return Counter((r["method"], r["path"], bytes.fromhex(r["body_hex"])) for r in records)


def test_kill_9_during_a_logits_request_loses_nothing(
    tmp_path: Path, db_url: str, cloud_app: CloudApp, capsys
) -> None:
    db_file = tmp_path / "edge.db"
    with open_store(db_url) as store:
        user_id = store.profiles.create_user(
            ProfileIn(name="Ada Moss", age="41", location="Tacoma", occupation="Florist")
        ).id
        key = store.keys.create(KeyIn(scope="admin", label="kill -9 test")).secret

    with cloud_app.serving():
        edge = EdgeProcess(db_url, cloud_app.url, tmp_path)
        try:
            request = chat_in_background(edge, user_id, key)
            caught = kill_mid_step(edge, db_file, request)
        finally:
            edge.stop()
        before = snapshot(db_file)
        assert before[caught][-1] == "sending"
        assert cloud_app.open_sessions() == 1  # the killed request's session

        edge = EdgeProcess(db_url, cloud_app.url, tmp_path)
        try:
            # The cloud's record first: whatever it got was in the ledger before it left.
            received = received_calls(cloud_app)
            after = snapshot(db_file)
            # No row says 'sending'; the one caught in flight says 'interrupted'.
            assert [i for i, row in after.items() if row[-1] == "sending"] == []
            assert after[caught][-1] == "interrupted"
            # Nothing lost: every row is still there with its exact bytes ...
            assert {i: row[:3] for i, row in before.items()} == {
                i: row[:3] for i, row in after.items() if i in before
            }
            # ... and every call the cloud received is in the ledger, byte for byte, but
            # the one the kill cut short, of which the cloud may have got only a part.
            unrecorded = received - Counter(row[:3] for row in after.values())
            method, endpoint, payload, _ = after[caught]
            for cut_short in unrecorded:
                assert cut_short[:2] == (method, endpoint) and payload.startswith(cut_short[2])
            assert sum(unrecorded.values()) <= 1

            listed = httpx.get(
                f"{edge.url}/v1/ledger",
                params={"limit": 500},
                headers={"Authorization": f"Bearer {key}"},
            ).json()["data"]
            assert {e["id"]: e["status"] for e in listed}[caught] == "interrupted"

            # The restarted edge closes the session the killed request held.
            deadline = time.monotonic() + 60
            while cloud_app.open_sessions() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert cloud_app.open_sessions() == 0
        finally:
            edge.stop()

    with open_store(db_url) as store:
        rows, _ = store.ledger.query(limit=500)
        closes = [r for r in rows if r.method == "DELETE"]
        assert [(r.status, r.http_status) for r in closes] == [("ok", 204)]
        assert store.ledger.open_cloud_sessions() == []

    assert edge_cli(["ledger", "verify", "--chain-only", "--db", db_url]) == 0
    assert "intact" in capsys.readouterr().out
    assert edge_cli(["ledger", "show", "--limit", "500", "--db", db_url]) == 0
    assert f"#{caught} " in (shown := capsys.readouterr().out) and "-> interrupted" in shown
