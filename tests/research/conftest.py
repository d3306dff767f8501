"""A real cloud server on SmolLM2 for the research tools to call (their LLM and judge)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import shared_default_engine, start_cloud_server

TOKEN = "research-token-0123456789"


@dataclass(frozen=True)
class Cloud:
    url: str
    model: str


@pytest.fixture(scope="session")
def research_cloud() -> Iterator[Cloud]:
    engine = shared_default_engine()
    url, stop = start_cloud_server(CloudSettings(token=TOKEN), engine)
    try:
        yield Cloud(url, engine.model_id)
    finally:
        stop()


@pytest.fixture
def cloud_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COGENESIS_CLOUD_TOKEN", TOKEN)
    return TOKEN
