"""The edge's long-lived parts, built once per app and shared by every route."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edge_agent.gates import GateLibrary
from edge_agent.gateway import Gateway, VocabularyMismatch
from edge_agent.guard.protocol import Guard
from edge_agent.metrics import EdgeMetrics
from edge_agent.outbound import CloudClient, CloudError
from edge_agent.prefix_cache import PrefixCache
from edge_agent.settings import EdgeSettings
from edge_agent.slm import SmallModel, SmallModelPool
from edge_agent.store import Store, data_dir, open_store
from shared_protocol import PROPOSE_CAPABILITY, InfoResponse
from shared_protocol.defaults import default_gguf_path


@dataclass
class EdgeServices:
    settings: EdgeSettings
    store: Store
    pool: SmallModelPool
    cloud: CloudClient
    guard: Guard
    gateway: Gateway
    metrics: EdgeMetrics
    gates: GateLibrary
    cloud_info: InfoResponse | None = None
    started_at: float = field(default_factory=time.time)  # the models' `created`

    def invalidate_prefix(self, user_id: str) -> None:
        """Free the user's cached KV prefixes (new data already misses them by key)."""
        for model in self.pool.models:
            model.prefix_cache.invalidate_user(user_id)

    def check_cloud_vocabulary(self) -> None:
        """Refuse logits mode up front when the cloud's vocabulary differs from ours
        (raises `VocabularyMismatch`).

        A cloud that cannot be reached now is not refused: the answer degrades instead.
        """
        if self.cloud_info is None:
            try:
                self.cloud_info = self.cloud.info()
            except CloudError:
                return
        self.gateway.cloud_can_propose = PROPOSE_CAPABILITY in self.cloud_info.capabilities
        try:
            self.gateway.check_vocabulary(
                self.cloud_info.model_id, self.cloud_info.tokenizer_fingerprint
            )
        except VocabularyMismatch:
            self.cloud_info = None  # the operator may fix the cloud; ask again next time
            raise


def build_services(
    settings: EdgeSettings,
    *,
    pool: SmallModelPool | None = None,
    guard: Guard | None = None,
) -> EdgeServices:
    store = open_store(settings.db_url)
    if pool is None:
        model_path = settings.model_path or default_gguf_path()
        cache = PrefixCache(settings.prefix_cache_entries, settings.prefix_cache_dir)
        pool = SmallModelPool(
            lambda: SmallModel(
                model_path,
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                prefix_cache=cache,
            ),
            size=settings.workers,
        )
    if guard is None:
        from edge_agent.guard import PrivacyGuard

        guard = PrivacyGuard()
    metrics = EdgeMetrics()
    metrics.watch_prefix_caches(model.prefix_cache for model in pool.models)
    cloud = CloudClient(
        settings.cloud_url,
        token=settings.cloud_token,
        ledger=store.ledger,
        timeout_s=settings.cloud_timeout_s,
        read_timeout_s=settings.cloud_read_timeout_s,
        connect_timeout_s=settings.cloud_connect_timeout_s,
        retries=settings.cloud_retries,
        metrics=metrics,
    )
    gateway = Gateway(settings, pool, cloud, guard, metrics=metrics)
    gates = GateLibrary(settings.gates_dir or (lambda: data_dir() / "gates"))
    return EdgeServices(settings, store, pool, cloud, guard, gateway, metrics, gates)
