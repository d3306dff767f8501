"""Fixtures: one real model per test session, real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud_service.engines import Engine
from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud, shared_default_engine

TOKEN = "test-token-0123456789"
METRICS_TOKEN = "test-metrics-token-0123456789"


@pytest.fixture(scope="session")
def cloud_engine() -> Engine:
    return shared_default_engine()


def _serve(settings: CloudSettings, engine: Engine) -> Iterator[RunningCloud]:
    cloud = RunningCloud.start(settings, engine)
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cloud") / "requests.jsonl"


@pytest.fixture(scope="session")
def cloud(cloud_engine: Engine, record_file: Path) -> Iterator[RunningCloud]:
    """The real server with default limits, recording request bodies."""
    settings = CloudSettings(token=TOKEN, record_requests_to=record_file)
    yield from _serve(settings, cloud_engine)


@pytest.fixture(scope="session")
def tight_cloud(cloud_engine: Engine) -> Iterator[RunningCloud]:
    """Same engine, tight limits: short idle timeout, small top-k, token cap and body."""
    settings = CloudSettings(
        token=TOKEN,
        session_idle_timeout_s=1.0,
        max_top_k=5,
        max_session_tokens=64,
        max_body_bytes=4096,
    )
    yield from _serve(settings, cloud_engine)


@pytest.fixture(scope="session")
def prompt_tokens(cloud_engine: Engine) -> list[int]:
    # A system prompt replaces SmolLM2's default one: a shorter prompt, faster tests.
    return cloud_engine.chat_prompt_tokens("Be brief.", "Write a haiku about the sea.")


@pytest.fixture
def start_cloud(cloud_engine: Engine) -> Iterator[Callable[..., RunningCloud]]:
    """Start servers on the shared engine with the given settings (and a metrics token);
    all are stopped after the test."""
    started: list[RunningCloud] = []

    def start(**settings) -> RunningCloud:
        settings = CloudSettings(token=TOKEN, metrics_token=METRICS_TOKEN, **settings)
        started.append(RunningCloud.start(settings, cloud_engine))
        return started[-1]

    yield start
    for cloud in started:
        cloud.stop()
