"""The edge's services for a research run, wired exactly as `cogenesis edge serve` does.

Research commands reuse `edge_agent.app.build_services`, so the small model gets the
configured context and threads and the cloud client the configured timeouts, retries,
token and ledger. Before any evaluation starts, the cloud must answer and share the
small model's vocabulary (teacher forcing compares token ids on both ends).
"""

from __future__ import annotations

from edge_agent.app import EdgeServices, build_services
from edge_agent.gateway import VocabularyMismatch
from edge_agent.outbound import CloudError
from edge_agent.settings import EdgeSettings
from edge_agent.slm import ModelLoadError
from edge_agent.store import StoreError
from shared_protocol.defaults import DefaultModelMissing


class SetupError(Exception):
    """The services of a research run cannot be set up; the message says why."""


def open_services(settings: EdgeSettings) -> EdgeServices:
    """The edge's services with one small-model context, checked against the cloud."""
    try:
        services = build_services(settings.model_copy(update={"workers": 1}))
    except (ModelLoadError, DefaultModelMissing, StoreError) as exc:
        raise SetupError(str(exc)) from exc
    try:
        info = services.cloud.info()
    except CloudError as exc:
        raise SetupError(f"the cloud at {settings.cloud_url} is not reachable: {exc}") from exc
    try:
        services.gateway.check_vocabulary(info.model_id, info.tokenizer_fingerprint)
    except VocabularyMismatch as exc:
        raise SetupError(str(exc)) from exc
    services.cloud_info = info
    return services
