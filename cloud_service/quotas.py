"""Per-tenant rate limits: requests per minute and tokens per minute.

Both are sliding-window counters from the ``limits`` library (in memory, per replica:
N replicas let a tenant through N times its limit; see deploy/README.md). A request
past a limit is refused with 429 and a Retry-After of when the window frees up again.
Concurrent sessions are counted by the session registry, not here.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from cloud_service.errors import RateLimited
from cloud_service.tenants import Tenant

MAX_RETRY_AFTER_S = 60


class TenantQuotas:
    def __init__(self, *, window: str = "minute") -> None:
        # window="second" makes tests fast; servers always count per minute.
        self._item = RateLimitItemPerSecond if window == "second" else RateLimitItemPerMinute
        self._window = window
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def admit_request(self, tenant: Tenant) -> None:
        """Count one request against the tenant's requests per minute."""
        limit = tenant.limits.requests_per_minute
        if limit is None:
            return
        item = self._item(limit, namespace="requests")
        if not self._limiter.hit(item, tenant.name):
            raise RateLimited(
                f"tenant {tenant.name!r} is past its {limit} requests per {self._window}",
                retry_after_s=self._retry_after(item, tenant),
            )

    def charge_tokens(self, tenant: Tenant, tokens: int) -> None:
        """Count ``tokens`` against the tenant's tokens per minute, before the work."""
        limit = tenant.limits.tokens_per_minute
        if limit is None:
            return
        if tokens > limit:
            raise RateLimited(
                f"this request costs {tokens} tokens; tenant {tenant.name!r} may use "
                f"{limit} per {self._window}: make it smaller"
            )
        item = self._item(limit, namespace="tokens")
        if not self._limiter.hit(item, tenant.name, cost=max(tokens, 1)):
            raise RateLimited(
                f"tenant {tenant.name!r} is past its {limit} tokens per {self._window}",
                retry_after_s=self._retry_after(item, tenant),
            )

    def _retry_after(self, item, tenant: Tenant) -> float:
        reset = self._limiter.get_window_stats(item, tenant.name).reset_time
        return float(min(max(math.ceil(reset - time.time()), 1), MAX_RETRY_AFTER_S))
