"""A delaying TCP proxy on 127.0.0.1: a network's round trip between edge and cloud.

For benchmarks and tests only. Every chunk of bytes is held for half the round trip
plus a random jitter before it is passed on, in each direction, and chunks keep their
order (a later chunk never overtakes an earlier one, as on one TCP stream).

    with delaying_proxy("http://127.0.0.1:8001", rtt_ms=50, jitter_ms=5) as url:
        ...  # talk to `url` instead of the cloud
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Delay:
    """One way's delay: half the round trip, plus uniform jitter in [0, jitter_s]."""

    rtt_s: float
    jitter_s: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.rtt_s < 0 or self.jitter_s < 0:
            raise ValueError("the round trip and the jitter must be >= 0")


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: Delay,
    rng: random.Random,
) -> None:
    """Forward reader -> writer, each chunk due at arrival + delay, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    last_due = 0.0
    try:
        while True:
            data = await reader.read(_CHUNK)
            jitter = rng.uniform(0.0, delay.jitter_s) if delay.jitter_s else 0.0
            last_due = max(last_due, time.monotonic() + delay.rtt_s / 2 + jitter)
            queue.put_nowait((last_due, data))
            if not data:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
    finally:
        writer.close()


class _Proxy:
    def __init__(self, upstream: tuple[str, int], delay: Delay) -> None:
        self.upstream = upstream
        self.delay = delay
        self.rng = random.Random(delay.seed)
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pipe(client_r, up_w, self.delay, self.rng),
            _pipe(up_r, client_w, self.delay, self.rng),
            return_exceptions=True,
        )

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        ready.set()
        self.loop.run_forever()
        # Stopped: close the listener and whatever connections are left.
        assert self.server is not None
        self.server.close()
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


@contextmanager
def delaying_proxy(
    upstream_url: str, rtt_ms: float, jitter_ms: float = 0.0, *, seed: int | None = None
) -> Iterator[str]:
    """Serve a delaying proxy to ``upstream_url`` (http://host:port) on a free loopback
    port, in a thread; yields the proxy's base URL. With ``rtt_ms=0`` and no jitter
    it yields ``upstream_url`` itself (no proxy at all)."""
    if rtt_ms == 0 and jitter_ms == 0:
        yield upstream_url
        return
    parts = urlsplit(upstream_url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"the proxy needs an http://host:port URL, not {upstream_url!r}")
    proxy = _Proxy((parts.hostname, parts.port), Delay(rtt_ms / 1000, jitter_ms / 1000, seed))
    ready = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(ready,), daemon=True, name="rtt-proxy")
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the delaying proxy did not start")
    try:
        yield f"http://{LOOPBACK}:{proxy.port}"
    finally:
        proxy.loop.call_soon_threadsafe(proxy.loop.stop)
        thread.join(timeout=10)
