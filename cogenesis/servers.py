"""Real servers on free 127.0.0.1 ports, for tests, benchmarks and the demo.

(`cloud_service.testing.start_cloud_server` keeps its own copy of the thread server:
the cloud package must not import this one.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

CHECKOUT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port that was free a moment ago, for a server in another process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(app: ASGIApp, *, port: int = 0, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free port (or ``port``, e.g. to
    serve an app again where it was); yields its base URL."""
    # The socket is bound here, so the kernel's pick of the port cannot race another
    # server. With the protocol given, uvicorn sees a TCP socket and sets TCP_NODELAY.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def start_cloud_process(env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """``python -m cloud_service serve`` of this checkout, with ``env`` added to this
    environment (port, token and the rest as COGENESIS_CLOUD_* variables); output goes
    to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cloud_service", "serve", "--log-level", "warning"],
            env={**os.environ, **env},
            cwd=CHECKOUT,  # -m finds this checkout's package first
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Until ``url``/healthz answers 200; RuntimeError (with the log's tail) otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout_s:g} s; see {log}")
