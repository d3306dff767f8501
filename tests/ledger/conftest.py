"""Fixtures of the ledger tests: a real SQLite file per test, and a real cloud."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from cloud_service.app import create_app as create_cloud_app
from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine
from edge_agent.store import Store, open_store
from tests.servers import free_port, running_server

CLOUD_TOKEN = "ledger-test-token-" + "x" * 16


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened


@dataclass
class CloudApp:
    """A real cloud app and the port it is served on; it can be stopped and served again
    on the same port with its sessions kept, like a cloud that was briefly unreachable."""

    app: FastAPI
    port: int
    received: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving(self):
        return running_server(self.app, port=self.port)

    def open_sessions(self) -> int:
        return len(self.app.state.sessions)


@pytest.fixture
def cloud_app(tmp_path: Path) -> CloudApp:
    received = tmp_path / "cloud-received.jsonl"
    settings = CloudSettings(token=CLOUD_TOKEN, record_requests_to=received)
    return CloudApp(create_cloud_app(settings, shared_default_engine()), free_port(), received)
