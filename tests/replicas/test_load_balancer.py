"""Two cloud processes behind a real nginx (deploy/nginx/cloud-lb.conf): round-robin,
no stickiness, a dead replica left out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.replicas.cluster import Cluster, nginx_binary, start_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        nginx_binary() is None,
        reason="nginx is not installed (apt-get install nginx; ./dev test installs it)",
    ),
]

TOKEN = "lb-test-token-0123456789"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = start_cluster(tmp_path, TOKEN)
    try:
        yield running
    finally:
        running.stop()


def client(cluster: Cluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.Client(base_url=cluster.url, headers=headers, timeout=60)


def test_steps_land_on_either_replica_with_no_stickiness(cluster: Cluster) -> None:
    with client(cluster) as lb:
        opened = lb.post("/v1/sessions", json={"prompt": "Name a sea.", "top_k": 3})
        assert opened.status_code == 201, opened.text
        sid = opened.json()["session_id"]
        codes = [lb.post(f"/v1/sessions/{sid}/step", json={}).status_code for _ in range(4)]
    # Round-robin: every other request reaches the replica that never saw the session.
    assert sorted(set(codes)) == [200, 404], codes


def test_a_killed_replica_is_left_out_and_the_other_answers(cluster: Cluster) -> None:
    cluster.replicas[0].kill()
    with client(cluster) as lb:
        codes = [lb.get("/v1/info").status_code for _ in range(6)]
    assert codes == [200] * 6
