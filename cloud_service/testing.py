"""Helpers to run a real cloud server in-process, for this package's and the edge's tests.

from cloud_service.testing import start_cloud_server
base_url, stop = start_cloud_server(CloudSettings(token="t"), engine=shared_engine)
try: ... finally: stop()
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx
import uvicorn

from cloud_service.app import create_app
from cloud_service.engines import Engine, build_engine
from cloud_service.settings import CloudSettings


class CloudServer(NamedTuple):
    base_url: str
    stop: Callable[[], None]


def start_cloud_server(
    settings: CloudSettings, engine: Engine | None = None, *, timeout_s: float = 60.0
) -> CloudServer:
    """Serve ``create_app(settings, engine)`` on a free port of settings.host in a thread.

    Pass a shared engine to avoid loading the model again. ``stop()`` shuts it down.
    """
    app = create_app(settings, engine)
    # With the protocol given, uvicorn recognizes a TCP socket and sets TCP_NODELAY;
    # without it every small request waits ~45 ms on Nagle's algorithm.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, 0))  # the kernel picks the port: no race with other tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"cloud-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the cloud test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return CloudServer(f"http://{settings.host}:{port}", stop)


_default_engine: Engine | None = None
_default_lock = threading.Lock()


def shared_default_engine() -> Engine:
    """One engine on the embedded model per process (loading it takes a moment).

    One thread: test processes often run an edge model too, and llama.cpp threads that
    spin on a shared 2-core machine are far slower than one thread per model.
    """
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = build_engine(CloudSettings(n_threads=1))
        return _default_engine


@dataclass
class RunningCloud:
    """A started server plus a client that sends its token."""

    base_url: str
    client: httpx.Client
    settings: CloudSettings
    engine: Engine
    stop: Callable[[], None]

    @classmethod
    def start(cls, settings: CloudSettings, engine: Engine | None = None) -> RunningCloud:
        engine = engine if engine is not None else shared_default_engine()
        base_url, stop = start_cloud_server(settings, engine)
        token = settings.token_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=base_url, headers=headers, timeout=120)

        def stop_all() -> None:
            client.close()
            stop()

        return cls(base_url, client, settings, engine, stop_all)

    def open(self, **body: Any) -> dict:
        response = self.client.post("/v1/sessions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def step(self, session_id: str, **body: Any) -> dict:
        response = self.client.post(f"/v1/sessions/{session_id}/step", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self, session_id: str) -> None:
        response = self.client.delete(f"/v1/sessions/{session_id}")
        assert response.status_code == 204, response.text

    def metric(self, name: str, **labels: str) -> float:
        """A sample of GET /metrics (the settings need a metrics_token); 0 if absent."""
        from prometheus_client.parser import text_string_to_metric_families

        assert self.settings.metrics_token is not None, "start it with a metrics_token"
        token = self.settings.metrics_token.get_secret_value()
        text = httpx.get(
            f"{self.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}
        ).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def fresh_next(self, tokens: list[int], top_k: int = 10) -> dict:
        """Top-k after ``tokens`` from a brand-new session: a reference evaluation."""
        opened = self.open(prompt_token_ids=tokens, top_k=top_k)
        self.close(opened["session_id"])
        return opened["next"]
