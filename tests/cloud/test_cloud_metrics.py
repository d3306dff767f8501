"""The cloud's /metrics on a real server: what it counts, who may read it, and that no
label carries a session id or request text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud_service.engines import Engine
from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud

pytestmark = pytest.mark.slow  # the real model behind a real server

TOKEN = "metrics-test-token-0123456789"
METRICS_TOKEN = "metrics-reader-token-0123456789"
SECRET_WORD = "Zanzibar-Quillfeather"


@pytest.fixture(scope="module")
def cloud(cloud_engine: Engine) -> Iterator[RunningCloud]:
    settings = CloudSettings(token=TOKEN, metrics_token=METRICS_TOKEN)
    running = RunningCloud.start(settings, cloud_engine)
    try:
        yield running
    finally:
        running.stop()


def scrape(cloud: RunningCloud) -> tuple[str, dict[tuple[str, frozenset], float]]:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = httpx.get(f"{cloud.base_url}/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}"])
def test_metrics_need_the_metrics_token(cloud: RunningCloud, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert httpx.get(f"{cloud.base_url}/metrics", headers=headers).status_code == 404


def test_metrics_are_off_without_a_metrics_token(cloud_engine: Engine) -> None:
    plain = RunningCloud.start(CloudSettings(token=TOKEN), cloud_engine)
    try:
        for header in (None, f"Bearer {TOKEN}"):
            headers = {"Authorization": header} if header else {}
            assert httpx.get(f"{plain.base_url}/metrics", headers=headers).status_code == 404
    finally:
        plain.stop()


def test_requests_tokens_and_sessions_are_counted(
    cloud: RunningCloud, prompt_tokens: list[int]
) -> None:
    _, before = scrape(cloud)
    step_route = "/v1/sessions/{session_id}/step"
    sketch = cloud.client.post(
        "/v1/sketch", json={"instruction": f"Write about {SECRET_WORD}.", "max_tokens": 16}
    ).json()
    opened = cloud.open(prompt_token_ids=prompt_tokens)
    sid = opened["session_id"]
    cloud.step(sid, append=[prompt_tokens[-1]], draft=[prompt_tokens[-2], prompt_tokens[-3]])
    assert cloud.client.post("/v1/sessions/nope/step", json={}).status_code == 404
    assert httpx.get(f"{cloud.base_url}/v1/info").status_code == 401
    text, after = scrape(cloud)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "cogenesis_cloud_requests_total"
    assert grew(total, route="/v1/sketch", method="POST", status="200") == 1
    assert grew(total, route="/v1/sessions", method="POST", status="201") == 1
    assert grew(total, route=step_route, method="POST", status="200") == 1
    assert grew(total, route=step_route, method="POST", status="404") == 1
    assert grew(total, route="/v1/info", method="GET", status="401") == 1
    assert grew("cogenesis_cloud_request_duration_seconds_count", route=step_route) == 2
    assert grew("cogenesis_cloud_tenant_requests_total", tenant="default", status="200") == 2
    assert grew("cogenesis_cloud_tenant_requests_total", tenant="-", status="401") == 1
    scored = sketch["prompt_tokens"] + len(prompt_tokens) + 3
    assert grew("cogenesis_cloud_tokens_scored_total", tenant="default") == scored
    generated = sketch["completion_tokens"]
    assert grew("cogenesis_cloud_tokens_generated_total", tenant="default") == generated
    assert value(after, "cogenesis_cloud_sessions_open") == 1
    assert value(after, "cogenesis_cloud_queue_depth") == 0
    assert sid not in text and SECRET_WORD not in text and "nope" not in text
    cloud.close(sid)
    _, closed = scrape(cloud)
    assert value(closed, "cogenesis_cloud_sessions_open") == 0
