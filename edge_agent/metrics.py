"""Prometheus metrics of one edge app (prometheus-client), for ``GET /metrics``.

What is counted: cloud calls by endpoint and outcome, bytes up and down, answers by
mode, degraded answers by reason, guard findings by entity type, prefix-cache hits and
misses. Labels come from fixed vocabularies only: endpoint names, status codes, modes,
reason words and entity types. Never a user id, a session id or any text: a label
value outside its vocabulary is counted as "other".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CALLS = frozenset({"info", "sketch", "open", "step", "close", "other"})
MODES = frozenset({"local", "cogenesis-sketch", "cogenesis-logits"})
# Degraded reasons, as they start (or appear in) a report's degraded_reason.
DEGRADED_REASONS = {
    "cloud busy": "cloud_busy",
    "cloud unreachable": "cloud_unreachable",
    "cloud timed out": "cloud_timed_out",
    "blocked by the privacy guard": "guard_blocked",
    "vocabular": "vocabulary_mismatch",
    "cloud error": "cloud_error",
}
ENTITY_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
OUTCOME = re.compile(r"^([1-5][0-9][0-9]|cloud [a-z ]{1,20})$")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER = "other"


class EdgeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cloud_calls = Counter(
            "cogenesis_edge_cloud_calls",
            "Requests sent to the cloud, by endpoint and outcome (HTTP status, or "
            "'cloud unreachable' / 'cloud timed out' when there was no answer).",
            ["call", "outcome"],
            registry=r,
        )
        self.cloud_seconds = Histogram(
            "cogenesis_edge_cloud_call_duration_seconds",
            "Time of one request to the cloud, by endpoint.",
            ["call"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_up = Counter(
            "cogenesis_edge_cloud_bytes_up", "Bytes sent to the cloud.", ["call"], registry=r
        )
        self.bytes_down = Counter(
            "cogenesis_edge_cloud_bytes_down",
            "Bytes received from the cloud.",
            ["call"],
            registry=r,
        )
        self.answers = Counter(
            "cogenesis_edge_answers", "Completions answered, by mode.", ["mode"], registry=r
        )
        self.degraded = Counter(
            "cogenesis_edge_degraded_answers",
            "Completions answered without (all of) the cloud's help, by reason.",
            ["reason"],
            registry=r,
        )
        self.findings = Counter(
            "cogenesis_edge_guard_findings",
            "Private details the guard found in outbound text, by entity type.",
            ["entity_type"],
            registry=r,
        )
        self.failovers = Counter(
            "cogenesis_edge_logits_session_reopens",
            "Logits sessions reopened on another replica after theirs was lost.",
            registry=r,
        )

    def watch_prefix_caches(self, caches: Iterable[Any]) -> None:
        """Expose the hit and miss counters of PrefixCaches (each counted once)."""
        self.registry.register(_PrefixCacheCollector({id(c): c for c in caches}.values()))

    def cloud_call(self, call: str, outcome: str, up: int, down: int, seconds: float) -> None:
        call = call if call in CALLS else OTHER
        self.cloud_calls.labels(call, outcome if OUTCOME.match(outcome) else OTHER).inc()
        self.cloud_seconds.labels(call).observe(seconds)
        self.bytes_up.labels(call).inc(up)
        self.bytes_down.labels(call).inc(down)

    def answered(
        self,
        mode: str,
        *,
        degraded_reason: str | None = None,
        degraded: bool = False,
        guard_counts: Mapping[str, int] | None = None,
        session_reopens: int = 0,
    ) -> None:
        """One completion: its mode, why it degraded (if it did), what the guard found,
        how many logits sessions it reopened on another replica."""
        self.answers.labels(mode if mode in MODES else OTHER).inc()
        if degraded or degraded_reason:
            self.degraded.labels(reason_label(degraded_reason)).inc()
        for entity_type, count in (guard_counts or {}).items():
            label = entity_type if ENTITY_TYPE.match(entity_type) else OTHER
            self.findings.labels(label).inc(count)
        if session_reopens:
            self.failovers.inc(session_reopens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def reason_label(reason: str | None) -> str:
    """The fixed word for a degraded reason; its text (which may name things) is not kept."""
    text = (reason or "").lower()
    found = [(text.find(phrase), label) for phrase, label in DEGRADED_REASONS.items()]
    found = [(at, label) for at, label in found if at >= 0]
    return min(found)[1] if found else OTHER


class _PrefixCacheCollector(Collector):
    def __init__(self, caches: Iterable[Any]) -> None:
        self.caches = list(caches)

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "cogenesis_edge_prefix_cache_lookups",
            "Lookups of a user's private-prefix KV state, by result.",
            labels=["result"],
        )
        family.add_metric(["hit"], sum(c.hits for c in self.caches))
        family.add_metric(["miss"], sum(c.misses for c in self.caches))
        yield family
