"""Edge metrics: what they count, and that labels never carry ids or private text."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.metrics import EdgeMetrics, reason_label
from edge_agent.outbound import CloudClient, CloudUnreachable, CloudUsage
from edge_agent.prefix_cache import PrefixCache
from tests.servers import free_port

USER = "user-7f3a9c"
SECRET = "Rosalind Kettering"


def samples(metrics: EdgeMetrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: EdgeMetrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("cloud busy: answered 503: the engine is busy", "cloud_busy"),
        ("cloud unreachable: cannot connect to http://x", "cloud_unreachable"),
        ("cloud timed out: no answer within 60 s", "cloud_timed_out"),
        ("cloud timed out: no answer; finished on the device", "cloud_timed_out"),
        ("blocked by the privacy guard: the task title names private details", "guard_blocked"),
        ("cloud error: answered 422: bad", "cloud_error"),
        (f"something about {SECRET}", "other"),
        (None, "other"),
    ],
)
def test_degraded_reasons_become_fixed_words(reason: str | None, label: str) -> None:
    assert reason_label(reason) == label


def test_answers_count_modes_reasons_and_finding_types_never_text() -> None:
    metrics = EdgeMetrics()
    metrics.answered("cogenesis-sketch", guard_counts={"PERSON": 2, "EMAIL_ADDRESS": 1})
    metrics.answered(
        "cogenesis-logits",
        degraded=True,
        degraded_reason=f"cloud busy: answered 429 for {SECRET}",
        guard_counts={SECRET: 1},
    )
    metrics.answered(USER)
    assert value(metrics, "cogenesis_edge_answers_total", mode="cogenesis-sketch") == 1
    assert value(metrics, "cogenesis_edge_answers_total", mode="other") == 1
    assert value(metrics, "cogenesis_edge_degraded_answers_total", reason="cloud_busy") == 1
    assert value(metrics, "cogenesis_edge_guard_findings_total", entity_type="PERSON") == 2
    assert value(metrics, "cogenesis_edge_guard_findings_total", entity_type="other") == 1
    text = metrics.render().decode()
    assert SECRET not in text and USER not in text


def test_cloud_calls_are_counted_by_endpoint_with_their_bytes() -> None:
    metrics = EdgeMetrics()

    class NoLedger:
        def begin(self, **_: object) -> int:
            return 0

        def finish(self, *_: object, **__: object) -> None:
            pass

    client = CloudClient(
        f"http://127.0.0.1:{free_port()}",
        token="t",
        ledger=NoLedger(),
        retries=1,
        backoff_s=0.01,
        metrics=metrics,
    )
    with pytest.raises(CloudUnreachable):
        client.info()
    usage = CloudUsage()
    with pytest.raises(CloudUnreachable):
        client.close_session("session-id-abc", user_id=USER, mode="logits", usage=usage)
    outcome = "cloud unreachable"
    assert value(metrics, "cogenesis_edge_cloud_calls_total", call="info", outcome=outcome) == 2
    assert value(metrics, "cogenesis_edge_cloud_calls_total", call="close", outcome=outcome) == 1
    metrics.cloud_call("step", "200", 120, 900, 0.05)
    assert value(metrics, "cogenesis_edge_cloud_bytes_up_total", call="step") == 120
    assert value(metrics, "cogenesis_edge_cloud_bytes_down_total", call="step") == 900
    assert "session-id-abc" not in metrics.render().decode()


def test_prefix_cache_hits_and_misses_are_read_from_the_cache() -> None:
    from edge_agent.prefix_cache import KVState

    cache = PrefixCache(max_entries=2)
    metrics = EdgeMetrics()
    metrics.watch_prefix_caches([cache, cache])  # shared by a pool: counted once
    cache.get("u:1:a")
    cache.put("u:1:a", KVState([1, 2], b"kv"))
    cache.get("u:1:a")
    cache.get("u:1:a")
    assert value(metrics, "cogenesis_edge_prefix_cache_lookups_total", result="hit") == 2
    assert value(metrics, "cogenesis_edge_prefix_cache_lookups_total", result="miss") == 1


@pytest.mark.slow
def test_the_edge_counts_a_real_sketch_answer_and_names_nobody(edge) -> None:
    import httpx

    name = "Marisol Okonkwo-Tran"
    profile = {"name": name, "occupation": "Marine biologist", "location": "Halifax"}
    created = edge.http.post("/v1/profiles", json=profile)
    assert created.status_code == 201, created.text
    user = created.json()["id"]
    task = f"Write a thank-you note from {name} to a colleague for help with a report."
    body = {
        "model": "cogenesis-sketch",
        "user": user,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": task}],
    }
    reply = edge.http.post("/v1/chat/completions", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    report = reply.json()["cogenesis"]
    metrics = edge.services.metrics
    assert value(metrics, "cogenesis_edge_answers_total", mode="cogenesis-sketch") == 1
    sketch_calls = {"call": "sketch", "outcome": "200"}
    assert value(metrics, "cogenesis_edge_cloud_calls_total", **sketch_calls) == 1
    assert (
        value(metrics, "cogenesis_edge_cloud_bytes_up_total", call="sketch") == report["bytes_up"]
    )
    assert report["guard"]["counts"]  # the name was found (and redacted)
    for entity_type, count in report["guard"]["counts"].items():
        assert (
            value(metrics, "cogenesis_edge_guard_findings_total", entity_type=entity_type) == count
        )
    lookups = sum(
        value(metrics, "cogenesis_edge_prefix_cache_lookups_total", result=r)
        for r in ("hit", "miss")
    )
    assert lookups >= 1
    served = edge.http.get("/metrics")
    assert served.status_code == 200 and "cogenesis_edge_answers_total" in served.text
    # Only an admin reads them: no key, or the user's own key, is refused.
    assert httpx.get(f"{edge.url}/metrics", timeout=30).status_code == 401
    mine = edge.client(edge.user_key(user)).get("/metrics")
    assert mine.status_code == 403
    assert user not in served.text and "Marisol" not in served.text
