"""Servers for tests: the real ones (from cogenesis.servers) and a hung cloud."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cogenesis.servers import free_port, running_server

__all__ = ["free_port", "running_server", "silent_port"]


@contextmanager
def silent_port() -> Iterator[str]:
    """FakeSlowCloud: accepts connections and never answers (a hung cloud).

    A real cloud cannot be made to hang on demand, so this stands in for one.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()
