"""Prometheus metrics of one cloud app, served at ``GET /metrics`` (prometheus-client).

Each app has its own registry, so several apps in one process (tests) never share
counters. Labels are route templates, methods, statuses, tenant names and fixed
reason words: nothing from a request body, and no session id.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: a logits step is tens of milliseconds, a sketch about a second, a queued one more.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NO_TENANT = "-"  # requests that never authenticated (401, 413, /healthz)


class CloudMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cogenesis_cloud_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "cogenesis_cloud_request_duration_seconds",
            "Time from the request's arrival to its answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tenant_requests = Counter(
            "cogenesis_cloud_tenant_requests",
            "Requests per tenant, by status.",
            ["tenant", "status"],
            registry=r,
        )
        self.tokens_scored = Counter(
            "cogenesis_cloud_tokens_scored",
            "Tokens sent for scoring: session prompts, appended and drafted tokens, "
            "sketch prompts.",
            ["tenant"],
            registry=r,
        )
        self.tokens_generated = Counter(
            "cogenesis_cloud_tokens_generated",
            "Tokens generated (sketch outlines).",
            ["tenant"],
            registry=r,
        )
        self.admission = Counter(
            "cogenesis_cloud_admission_events",
            "Requests shed (queue_full, queue_timeout) or dropped (client_gone).",
            ["reason"],
            registry=r,
        )
        self.sessions_open = Gauge(
            "cogenesis_cloud_sessions_open", "Open logits sessions.", registry=r
        )
        self.queue_depth = Gauge(
            "cogenesis_cloud_queue_depth", "Requests waiting for the engine.", registry=r
        )
        self.engine_active = Gauge(
            "cogenesis_cloud_engine_active", "Requests the engine is computing.", registry=r
        )

    def watch(
        self,
        *,
        sessions_open: Callable[[], float],
        queue_depth: Callable[[], float],
        engine_active: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time from the live objects."""
        self.sessions_open.set_function(sessions_open)
        self.queue_depth.set_function(queue_depth)
        self.engine_active.set_function(engine_active)

    def observe_request(
        self, *, route: str, method: str, status: int, seconds: float, tenant: str | None
    ) -> None:
        code = str(status)
        self.requests.labels(route, method, code).inc()
        self.latency.labels(route).observe(seconds)
        self.tenant_requests.labels(tenant or NO_TENANT, code).inc()

    def admission_event(self, reason: str) -> None:
        self.admission.labels(reason).inc()

    def scored(self, tenant: str, tokens: int) -> None:
        self.tokens_scored.labels(tenant).inc(tokens)

    def generated(self, tenant: str, tokens: int) -> None:
        self.tokens_generated.labels(tenant).inc(tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
