"""The edge's real servers, from the edge tests' fixtures (same model pool and guard)."""

from tests.edge.conftest import cloud, edge, guard, pool, start_edge  # noqa: F401
