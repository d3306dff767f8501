"""Admission to the engine: a bounded queue, fair across tenants, that sheds past its end.

At most ``slots`` requests use the engine at once. Up to ``max_queue`` more wait; they
are let in round-robin across tenants (first come, first served within a tenant), so
one tenant's burst does not starve the others. A request that finds the queue full, or
waits longer than ``queue_timeout_s``, is shed with 503 and a Retry-After estimated
from the queue and the recent service time: a clear "come back later" instead of a
client-side timeout. A waiting request whose client went away leaves the queue.

Callers are the route threads (FastAPI runs plain ``def`` routes in a thread pool), so
waiting blocks a thread: ``thread_capacity`` says how many the pool needs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cloud_service.errors import ClientGone, Overloaded

POLL_S = 0.05  # how often a waiter checks its client and its deadline
MAX_RETRY_AFTER_S = 60


@dataclass(eq=False)
class _Ticket:
    tenant: str
    granted: threading.Event = field(default_factory=threading.Event)


class Admission:
    def __init__(
        self,
        slots: int,
        max_queue: int,
        queue_timeout_s: float,
        *,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._on_event = on_event or (lambda _event: None)
        self._lock = threading.Lock()
        self._active = 0
        self._queues: OrderedDict[str, deque[_Ticket]] = OrderedDict()
        self._waiting = 0
        self._service_s = 1.0  # moving average of one request's time in a slot

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def thread_capacity(self) -> int:
        """Route threads that may block here at once."""
        return self.slots + self.max_queue

    @contextmanager
    def slot(self, tenant: str, client_gone: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold one engine slot for the body of the ``with``.

        Raises Overloaded (shed) or ClientGone (dropped) before the body runs.
        """
        self._acquire(tenant, client_gone)
        started = time.monotonic()
        try:
            yield
        finally:
            self._release(time.monotonic() - started)

    def retry_after_s(self) -> float:
        """When a shed request may expect room: the queue ahead of it, served by slots."""
        ahead = self._waiting + self._active
        estimate = math.ceil(self._service_s * max(ahead, 1) / self.slots)
        return float(min(max(estimate, 1), MAX_RETRY_AFTER_S))

    # -- the queue ------------------------------------------------------------------

    def _acquire(self, tenant: str, client_gone: Callable[[], bool]) -> None:
        with self._lock:
            if self._active < self.slots and not self._waiting:
                self._active += 1
                return
            if self._waiting >= self.max_queue:
                self._on_event("queue_full")
                raise Overloaded(
                    f"the engine is busy ({self._active} running, {self._waiting} waiting); "
                    "retry later",
                    retry_after_s=self.retry_after_s(),
                )
            ticket = _Ticket(tenant)
            self._queues.setdefault(tenant, deque()).append(ticket)
            self._waiting += 1
        deadline = time.monotonic() + self.queue_timeout_s
        while not ticket.granted.wait(POLL_S):
            gone = client_gone()
            if not gone and time.monotonic() < deadline:
                continue
            with self._lock:
                if ticket.granted.is_set():
                    break  # granted while we looked away: handled below
                self._queues[tenant].remove(ticket)
                if not self._queues[tenant]:
                    del self._queues[tenant]
                self._waiting -= 1
            if gone:
                self._on_event("client_gone")
                raise ClientGone()
            self._on_event("queue_timeout")
            raise Overloaded(
                f"waited {self.queue_timeout_s:g} s for the engine; retry later",
                retry_after_s=self.retry_after_s(),
            )
        if client_gone():  # granted, but nobody is listening any more
            self._release(None)
            self._on_event("client_gone")
            raise ClientGone()

    def _release(self, service_s: float | None) -> None:
        with self._lock:
            if service_s is not None:
                self._service_s = 0.8 * self._service_s + 0.2 * service_s
            if not self._queues:
                self._active -= 1
                return
            # The slot passes straight to the next waiter: round-robin over tenants.
            tenant, tickets = next(iter(self._queues.items()))
            ticket = tickets.popleft()
            if tickets:
                self._queues.move_to_end(tenant)
            else:
                del self._queues[tenant]
            self._waiting -= 1
            ticket.granted.set()
