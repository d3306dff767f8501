"""Both ends for real: the cloud service and the edge agent on free loopback ports."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server
from cogenesis.servers import free_port, start_cloud_process, wait_healthy
from edge_agent.app import EdgeServices, build_services, create_app
from edge_agent.prefix_cache import PrefixCache
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.store.schemas import KeyIn
from shared_protocol.defaults import default_gguf_path
from tests.servers import running_server

CLOUD_TOKEN = "test-token-" + "x" * 16


@dataclass
class Cloud:
    url: str
    received: Path

    def bodies(self) -> list[bytes]:
        """Every raw request body the cloud service received, in order."""
        if not self.received.exists():
            return []
        lines = self.received.read_text().splitlines()
        return [bytes.fromhex(json.loads(line)["body_hex"]) for line in lines if line]


@dataclass
class Edge:
    """A running edge agent, with an admin key and a client that sends it."""

    url: str
    services: EdgeServices
    admin_key: str
    http: httpx.Client

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def user_key(self, user_id: str) -> str:
        """A new key that acts as this (stored) user."""
        return self.services.store.keys.create(KeyIn(scope="user", user_id=user_id)).secret

    def client(self, key: str) -> httpx.Client:
        """A client sending another key; closed with the edge."""
        client = httpx.Client(base_url=self.url, headers=self.headers(key), timeout=60)
        self._others.append(client)
        return client

    def __post_init__(self) -> None:
        self._others: list[httpx.Client] = []

    def close(self) -> None:
        for client in [self.http, *self._others]:
            client.close()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory) -> Iterator[Cloud]:
    received = tmp_path_factory.mktemp("cloud") / "received.jsonl"
    settings = CloudSettings(token=CLOUD_TOKEN, record_requests_to=received)
    url, stop = start_cloud_server(settings, shared_default_engine())
    try:
        yield Cloud(url, received)
    finally:
        stop()


@functools.cache
def shared_pool() -> SmallModelPool:
    """One pool per process, whichever conftest asks (tests/security reuses these)."""
    cache = PrefixCache(max_entries=8)  # shared by the contexts, as build_services does
    return SmallModelPool(
        lambda: SmallModel(default_gguf_path(), n_ctx=4096, prefix_cache=cache), size=2
    )


@functools.cache
def shared_guard():
    from edge_agent.guard import PrivacyGuard

    return PrivacyGuard()


@pytest.fixture(scope="session")
def pool() -> Iterator[SmallModelPool]:
    yield shared_pool()
    shared_pool.cache_clear()  # freed now, while llama.cpp is still loaded, not at exit


@pytest.fixture(scope="session")
def guard():
    return shared_guard()


def edge_settings(tmp_path: Path, cloud_url: str, **overrides) -> EdgeSettings:
    values = {
        "db_url": f"sqlite:///{tmp_path / 'edge.db'}",
        "cloud_url": cloud_url,
        "cloud_token": CLOUD_TOKEN,
        "max_tokens": 24,
        "cloud_timeout_s": 20,
    }
    return EdgeSettings(**{**values, **overrides})


@pytest.fixture
def start_edge(tmp_path, pool, guard):
    """Start an edge agent against any cloud URL; stopped at the end of the test.

    Every /v1 route needs a key, so each edge gets an admin key of its own (tests of
    user keys make those with ``edge.user_key``).
    """
    stack = []
    edges: list[Edge] = []

    def start(cloud_url: str, **overrides) -> Edge:
        settings = edge_settings(tmp_path, cloud_url, **overrides)
        services = build_services(settings, pool=pool, guard=guard)
        server = running_server(create_app(settings, services=services))
        url = server.__enter__()
        stack.append(server)
        admin = services.store.keys.create(KeyIn(scope="admin", label="tests")).secret
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        edges.append(Edge(url, services, admin, http))
        return edges[-1]

    yield start
    for edge in edges:
        edge.close()
    for server in reversed(stack):
        server.__exit__(None, None, None)


@pytest.fixture
def edge(start_edge, cloud) -> Edge:
    return start_edge(cloud.url)


@pytest.fixture
def cloud_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real cloud in a process of its own, so that a test can kill it mid-answer."""
    port = free_port()
    env = {
        "COGENESIS_CLOUD_TOKEN": CLOUD_TOKEN,
        "COGENESIS_CLOUD_PORT": str(port),
        "COGENESIS_CLOUD_N_THREADS": "1",
    }
    log = tmp_path / "cloud.log"
    process = start_cloud_process(env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(20)
