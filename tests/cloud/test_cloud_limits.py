"""Per-tenant limits (429 + Retry-After) and the engine's bounded queue (503 + Retry-After).

The queue and the rate limiter are tested on their own with real threads and real
clocks; then on a real server with the real model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from cloud_service.admission import Admission
from cloud_service.errors import ClientGone, Overloaded, RateLimited
from cloud_service.quotas import TenantQuotas
from cloud_service.tenants import Tenant, TenantLimits


def tenant(name: str = "acme", **limits: int) -> Tenant:
    return Tenant(name, TenantLimits(**limits))


# -- rate limits --------------------------------------------------------------------------


def test_requests_past_the_limit_are_refused_until_the_window_frees() -> None:
    quotas = TenantQuotas(window="second")
    acme = tenant(requests_per_minute=3)
    for _ in range(3):
        quotas.admit_request(acme)
    with pytest.raises(RateLimited) as refused:
        quotas.admit_request(acme)
    assert 1 <= refused.value.retry_after_s <= 2
    quotas.admit_request(tenant("beta", requests_per_minute=3))  # another tenant: its own count
    time.sleep(2.1)  # a sliding window: two windows later the count has decayed
    quotas.admit_request(acme)


def test_tokens_are_charged_by_cost_and_a_request_larger_than_the_limit_says_so() -> None:
    quotas = TenantQuotas(window="second")
    acme = tenant(tokens_per_minute=100)
    quotas.charge_tokens(acme, 60)
    with pytest.raises(RateLimited, match="past its 100 tokens"):
        quotas.charge_tokens(acme, 60)
    with pytest.raises(RateLimited, match="costs 101 tokens") as too_big:
        quotas.charge_tokens(acme, 101)
    assert too_big.value.retry_after_s is None  # waiting would not help


def test_a_tenant_without_limits_is_never_refused() -> None:
    quotas = TenantQuotas(window="second")
    for _ in range(1000):
        quotas.admit_request(tenant())
        quotas.charge_tokens(tenant(), 10_000)


# -- the admission queue ------------------------------------------------------------------


class Gate:
    """Holds an engine slot until released, to line requests up behind it."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.release = threading.Event()
        self.entered = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()
        assert self.entered.wait(5)

    def _hold(self) -> None:
        with self.admission.slot("holder"):
            self.entered.set()
            self.release.wait(10)

    def open(self) -> None:
        self.release.set()
        self.thread.join(5)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_waiting_requests_are_served_round_robin_across_tenants() -> None:
    admission = Admission(1, 16, 10.0)
    gate = Gate(admission)
    order: list[str] = []
    threads = []
    # acme queues four requests before beta's two arrive.
    for name in ["acme", "acme", "acme", "acme", "beta", "beta"]:

        def run(name: str = name) -> None:
            with admission.slot(name):
                order.append(name)

        threads.append(threading.Thread(target=run))
        threads[-1].start()
        wait_until(lambda n=len(threads): admission.waiting == n)
    gate.open()
    for thread in threads:
        thread.join(5)
    assert order == ["acme", "beta", "acme", "beta", "acme", "acme"]
    assert admission.active == 0 and admission.waiting == 0


def test_a_full_queue_sheds_with_a_retry_after() -> None:
    events: list[str] = []
    admission = Admission(1, 1, 10.0, on_event=events.append)
    gate = Gate(admission)
    waiter = threading.Thread(target=lambda: admission.slot("a").__enter__(), daemon=True)
    waiter.start()
    wait_until(lambda: admission.waiting == 1)
    with pytest.raises(Overloaded) as shed, admission.slot("b"):
        pass
    assert shed.value.status == 503 and shed.value.retry_after_s >= 1
    assert events == ["queue_full"]
    gate.open()


def test_a_request_that_waits_past_the_queue_timeout_is_shed() -> None:
    events: list[str] = []
    admission = Admission(1, 4, 0.2, on_event=events.append)
    gate = Gate(admission)
    started = time.monotonic()
    with pytest.raises(Overloaded, match="waited"), admission.slot("a"):
        pass
    assert 0.2 <= time.monotonic() - started < 2
    assert admission.waiting == 0 and events == ["queue_timeout"]
    gate.open()
    assert admission.active == 0


def test_a_waiter_whose_client_left_leaves_the_queue_and_never_runs() -> None:
    events: list[str] = []
    admission = Admission(1, 4, 10.0, on_event=events.append)
    gate = Gate(admission)
    gone = threading.Event()
    ran = threading.Event()
    failures: list[BaseException] = []

    def wait_then_run() -> None:
        try:
            with admission.slot("a", gone.is_set):
                ran.set()
        except ClientGone as exc:
            failures.append(exc)

    thread = threading.Thread(target=wait_then_run)
    thread.start()
    wait_until(lambda: admission.waiting == 1)
    gone.set()
    thread.join(5)
    assert len(failures) == 1 and not ran.is_set()
    assert admission.waiting == 0 and events == ["client_gone"]
    gate.open()
    assert admission.active == 0


# -- on a real server ---------------------------------------------------------------------


def assert_retry_later(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["retry-after"]) >= 1


SKETCH = {"instruction": "Write about tea.", "max_tokens": 16}


@pytest.mark.slow
def test_requests_per_minute_past_the_limit_get_429(start_cloud) -> None:
    cloud = start_cloud(tenant_requests_per_minute=2)
    assert cloud.client.get("/v1/info").status_code == 200
    assert cloud.client.get("/v1/info").status_code == 200
    assert_retry_later(cloud.client.get("/v1/info"), 429, "rate_limited")
    assert cloud.client.get("/healthz").status_code == 200  # not a tenant's request


@pytest.mark.slow
def test_tokens_per_minute_past_the_limit_get_429(start_cloud) -> None:
    cloud = start_cloud(tenant_tokens_per_minute=40)
    assert cloud.client.post("/v1/sketch", json=SKETCH).status_code == 200
    assert cloud.client.post("/v1/sketch", json=SKETCH).status_code == 200
    assert_retry_later(cloud.client.post("/v1/sketch", json=SKETCH), 429, "rate_limited")


@pytest.mark.slow
def test_sessions_past_the_tenant_limit_get_429(start_cloud, prompt_tokens: list[int]) -> None:
    cloud = start_cloud(tenant_max_sessions=1)
    first = cloud.open(prompt_token_ids=prompt_tokens)
    second = cloud.client.post("/v1/sessions", json={"prompt_token_ids": prompt_tokens})
    assert_retry_later(second, 429, "too_many_sessions")
    cloud.close(first["session_id"])
    cloud.close(cloud.open(prompt_token_ids=prompt_tokens)["session_id"])


@pytest.mark.slow
def test_past_the_queue_the_cloud_sheds_with_503(start_cloud) -> None:
    cloud = start_cloud(engine_slots=1, max_queue=0)
    long_sketch = {
        "instruction": "Write a long essay about tea.",
        "max_points": 12,
        "max_tokens": 600,
    }
    answers: list[httpx.Response] = []

    def post_long() -> None:
        answers.append(cloud.client.post("/v1/sketch", json=long_sketch))

    first = threading.Thread(target=post_long)
    first.start()
    try:
        wait_until(lambda: cloud.metric("cogenesis_cloud_engine_active") == 1, timeout=30)
        assert_retry_later(cloud.client.post("/v1/sketch", json=SKETCH), 503, "overloaded")
    finally:
        first.join(120)
    assert answers[0].status_code == 200
