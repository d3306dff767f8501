"""Engine-bound work behind admission, in threads of its own (``EngineWork``).

Every route that computes on the engine (sketch, sessions, OpenAI chat) goes through
here, so all of them share one bounded fair queue and the tenants' token quotas: past
the queue a request is shed with 503 + Retry-After (admission.py) before it takes a
thread. A decode never blocks the event loop, and waiting requests never take the
threads that cheap routes need.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

import anyio
from fastapi import Request

from cloud_service.admission import Admission
from cloud_service.middleware import CLIENT_GONE_KEY, TENANT_KEY
from cloud_service.quotas import TenantQuotas
from cloud_service.tenants import Tenant

T = TypeVar("T")


def tenant_of(http: Request) -> Tenant:
    return http.scope[TENANT_KEY]  # set by GuardMiddleware on every /v1 route


def client_gone(http: Request) -> threading.Event:
    return http.scope[CLIENT_GONE_KEY]


class EngineWork:
    """Runs engine-bound calls in a thread pool of their own, through admission.

    Tokens are charged to the tenant once the request is admitted: a request shed by a
    full queue costs nothing, and its retry is not charged twice.
    """

    def __init__(self, admission: Admission, quotas: TenantQuotas) -> None:
        self.admission = admission
        self.quotas = quotas
        # Every admitted or queued request holds a thread while it waits or runs.
        self._threads = anyio.CapacityLimiter(admission.thread_capacity)

    async def run(self, http: Request, fn: Callable[[], T], *, tokens: int) -> T:
        """``fn()`` in an engine slot, once admitted; raises Overloaded, RateLimited or
        ClientGone instead when it is shed, over quota or abandoned."""
        return await (await self.start(http, fn, tokens=tokens))

    async def start(self, http: Request, fn: Callable[[], T], *, tokens: int) -> asyncio.Future[T]:
        """Returns once the work holds its slot and is charged (so shedding, queueing and
        quotas raise here, before a streamed answer begins), with its result's future."""
        tenant, gone = tenant_of(http), client_gone(http)
        ticket = self.admission.reserve(tenant.name)  # sheds here, before taking a thread
        loop = asyncio.get_running_loop()
        began = asyncio.Event()
        started = False

        def admitted() -> T:  # one thread waits for the slot and computes in it
            nonlocal started
            started = True
            with self.admission.hold(ticket, gone.is_set):
                self.quotas.charge_tokens(tenant, tokens)
                loop.call_soon_threadsafe(began.set)
                return fn()

        async def running() -> T:
            try:
                return await anyio.to_thread.run_sync(admitted, limiter=self._threads)
            finally:
                if not started:  # cancelled before a thread picked it up
                    self.admission.cancel(ticket)

        task = asyncio.ensure_future(running())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # always retrieved
        waiting = asyncio.ensure_future(began.wait())
        try:
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if task.done():
            task.result()  # shed, gone or over quota before it began: raise that
        return task

    async def admit(self, http: Request, *, tokens: int) -> ExitStack:
        """Wait for an engine slot and keep it: closing the returned stack gives it back.

        For work that outlives one call (a streamed answer, read a piece at a time). The
        caller closes the stack exactly once, whatever happens; if this raises, nothing
        is held.
        """
        tenant, gone = tenant_of(http), client_gone(http)
        ticket = self.admission.reserve(tenant.name)  # sheds here, before taking a thread
        started = False
        held: ExitStack | None = None

        def wait() -> None:
            nonlocal started, held
            started = True
            with ExitStack() as stack:
                stack.enter_context(self.admission.hold(ticket, gone.is_set))
                self.quotas.charge_tokens(tenant, tokens)  # over quota: the slot goes back
                held = stack.pop_all()

        try:
            await anyio.to_thread.run_sync(wait, limiter=self._threads)
        except BaseException:
            if held is not None:  # admitted, then cancelled on the way back
                held.close()
            raise
        finally:
            if not started:  # cancelled before a thread picked it up
                self.admission.cancel(ticket)
        assert held is not None
        return held
