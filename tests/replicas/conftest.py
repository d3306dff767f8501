"""Fixtures: the real model in a real in-process cloud server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud, shared_default_engine

TOKEN = "replicas-test-token-0123456789"


@pytest.fixture(scope="module")
def cloud() -> Iterator[RunningCloud]:
    running = RunningCloud.start(CloudSettings(token=TOKEN), shared_default_engine())
    try:
        yield running
    finally:
        running.stop()
