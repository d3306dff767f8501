"""The delaying proxy: bytes pass unchanged, each way late by half the round trip."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cogenesis.latency_proxy import LOOPBACK, Delay, delaying_proxy
from cogenesis.servers import running_server


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@pytest.fixture(scope="module")
def upstream():
    with running_server(Starlette(routes=[Route("/echo", echo, methods=["POST"])])) as url:
        yield url


def timed_post(client: httpx.Client, body: bytes) -> tuple[float, bytes]:
    started = time.perf_counter()
    reply = client.post("/echo", content=body)
    reply.raise_for_status()
    return time.perf_counter() - started, reply.content


def test_round_trip_is_delayed_and_bytes_are_unchanged(upstream: str) -> None:
    body = bytes(range(256)) * 1000  # larger than one read
    with httpx.Client(base_url=upstream) as direct:
        direct_s = min(timed_post(direct, body)[0] for _ in range(3))
    with delaying_proxy(upstream, rtt_ms=120, jitter_ms=10, seed=1) as url:
        assert url != upstream and url.startswith(f"http://{LOOPBACK}:")
        with httpx.Client(base_url=url) as client:
            runs = [timed_post(client, body) for _ in range(3)]
    assert all(content == body for _, content in runs)
    # One request and its reply: at least one round trip more than going direct.
    assert min(s for s, _ in runs) >= 0.12
    assert min(s for s, _ in runs) >= direct_s + 0.1


def test_zero_round_trip_means_no_proxy(upstream: str) -> None:
    with delaying_proxy(upstream, rtt_ms=0) as url:
        assert url == upstream


def test_listens_on_loopback_only(upstream: str) -> None:
    with delaying_proxy(upstream, rtt_ms=10) as url:
        port = int(url.rsplit(":", 1)[1])
        addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None)}
        addresses.discard(LOOPBACK)
        for address in addresses - {"::1"}:
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=1):
                pass


def test_bad_settings_are_refused(upstream: str) -> None:
    with pytest.raises(ValueError):
        Delay(-1.0)
    with pytest.raises(ValueError), delaying_proxy("https://example.org", rtt_ms=10):
        pass
