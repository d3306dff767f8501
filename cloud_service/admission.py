"""Admission to the engine: a bounded queue, fair across tenants, that sheds past its end.

At most ``slots`` requests use the engine at once. Up to ``max_queue`` more wait; they
are let in round-robin across tenants (first come, first served within a tenant), so
one tenant's burst does not starve the others. A request that finds the queue full, or
waits longer than ``queue_timeout_s``, is shed with 503 and a Retry-After estimated
from the queue and the recent service time: a clear "come back later" instead of a
client-side timeout. A waiting request whose client went away leaves the queue.

Waiting blocks a thread. The app reserves a place on the event loop first (``reserve``,
never blocking), so a shed request takes no thread, then waits and runs in a thread of
a pool of ``thread_capacity``: one per place.
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
class Ticket:
    """A place at the engine: granted, or waiting in its tenant's queue."""

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
        self._queues: OrderedDict[str, deque[Ticket]] = OrderedDict()
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
        ticket = self.reserve(tenant)
        with self.hold(ticket, client_gone):
            yield

    def reserve(self, tenant: str) -> Ticket:
        """Take a place: a slot now, or one in the queue. Never blocks.

        Raises Overloaded when the queue is full. Callers on the event loop reserve
        before taking a thread, so a shed request costs no thread.
        """
        with self._lock:
            ticket = Ticket(tenant)
            if self._active < self.slots and not self._waiting:
                self._active += 1
                ticket.granted.set()
                return ticket
            if self._waiting >= self.max_queue:
                self._on_event("queue_full")
                raise Overloaded(
                    f"the engine is busy ({self._active} running, {self._waiting} waiting); "
                    "retry later",
                    retry_after_s=self.retry_after_s(),
                )
            self._queues.setdefault(tenant, deque()).append(ticket)
            self._waiting += 1
            return ticket

    @contextmanager
    def hold(
        self, ticket: Ticket, client_gone: Callable[[], bool] = lambda: False
    ) -> Iterator[None]:
        """Wait for the reserved slot (blocking), hold it for the ``with``, pass it on."""
        self._wait(ticket, client_gone)
        started = time.monotonic()
        try:
            yield
        finally:
            self._release(time.monotonic() - started)

    def cancel(self, ticket: Ticket) -> None:
        """Give a reservation back unused (its request ended before it could wait)."""
        with self._lock:
            if not ticket.granted.is_set():
                self._unqueue(ticket)
                return
        self._release(None)

    def retry_after_s(self) -> float:
        """When a shed request may expect room: the queue ahead of it, served by slots."""
        ahead = self._waiting + self._active
        estimate = math.ceil(self._service_s * max(ahead, 1) / self.slots)
        return float(min(max(estimate, 1), MAX_RETRY_AFTER_S))

    # -- the queue ------------------------------------------------------------------

    def _wait(self, ticket: Ticket, client_gone: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.queue_timeout_s
        while not ticket.granted.wait(POLL_S):
            gone = client_gone()
            if not gone and time.monotonic() < deadline:
                continue
            with self._lock:
                if ticket.granted.is_set():
                    break  # granted while we looked away: handled below
                self._unqueue(ticket)
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

    def _unqueue(self, ticket: Ticket) -> None:
        """Under the lock: drop a waiting ticket."""
        tickets = self._queues[ticket.tenant]
        tickets.remove(ticket)
        if not tickets:
            del self._queues[ticket.tenant]
        self._waiting -= 1

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
