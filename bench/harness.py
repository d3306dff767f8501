"""What the benchmarks share: dev-set tasks, and both ends running for real on loopback."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cloud_service.engines import Engine
from cloud_service.settings import CloudSettings
from cloud_service.testing import start_cloud_server
from cogenesis.latency_proxy import delaying_proxy
from cogenesis.servers import running_server
from edge_agent.app import EdgeServices, build_services, create_app
from edge_agent.settings import EdgeSettings
from edge_agent.store.cogenesis_format import import_file, parse_item
from edge_agent.store.repository import user_id_for
from edge_agent.store.schemas import KeyIn


def load_tasks(path: Path, limit: int, bench: str) -> list[dict]:
    """The first ``limit`` records of a CoGenesis-format file; exits 2 if it is missing."""
    if not path.is_file():
        print(f"bench {bench}: no such dataset: {path}", file=sys.stderr)
        raise SystemExit(2)
    return json.loads(path.read_text(encoding="utf-8"))[:limit]


def record_user_id(record: dict) -> str:
    """The id the importer stores a record's person under."""
    return user_id_for(parse_item(0, record).profile)


@dataclass(frozen=True)
class BothEnds:
    cloud_url: str
    edge_url: str
    services: EdgeServices
    admin_key: str

    def client(self, timeout: float) -> httpx.Client:
        """A client of the edge that sends the bench's admin key."""
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.Client(base_url=self.edge_url, headers=headers, timeout=timeout)


@contextmanager
def both_ends(
    records: list[dict],
    work: Path,
    cloud: CloudSettings,
    engine: Engine | None = None,
    rtt_ms: float = 0.0,
    **edge: Any,
) -> Iterator[BothEnds]:
    """A cloud server (on ``engine``, or one loaded from ``cloud``) and an edge agent
    whose private store, in ``work``, holds the people of ``records``.

    ``edge`` overrides EdgeSettings; every user's prefix stays cached by default.
    With ``rtt_ms`` the edge reaches the cloud through a delaying proxy (a network).
    """
    subset = work / "tasks.json"
    subset.write_text(json.dumps(records), encoding="utf-8")
    cloud_server = start_cloud_server(cloud, engine)
    try:
        with delaying_proxy(
            cloud_server.base_url, rtt_ms, jitter_ms=rtt_ms / 10, seed=0
        ) as cloud_url:
            settings = EdgeSettings(
                **{
                    "db_url": f"sqlite:///{work / 'edge.db'}",
                    "cloud_url": cloud_url,
                    "cloud_token": cloud.token_value(),
                    "prefix_cache_entries": 64,
                    **edge,
                }
            )
            services = build_services(settings)
            import_file(subset, services.store.profiles, progress=False)
            admin = services.store.keys.create(KeyIn(scope="admin", label="bench")).secret
            with running_server(create_app(settings, services=services)) as edge_url:
                yield BothEnds(cloud_server.base_url, edge_url, services, admin)
    finally:
        cloud_server.stop()
