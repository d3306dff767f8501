"""The bounded cache of private-prefix KV states, in memory and on disk."""

from __future__ import annotations

from edge_agent.prefix_cache import KVState, PrefixCache, prefix_key


def state(n: int) -> KVState:
    return KVState(tokens=list(range(n)), data=bytes([n % 256]) * (n * 10))


def test_lru_keeps_at_most_max_entries_and_evicts_the_oldest() -> None:
    cache = PrefixCache(max_entries=2)
    cache.put("a:1:x", state(1))
    cache.put("b:1:x", state(2))
    assert cache.get("a:1:x") == state(1)  # a is now the most recent
    cache.put("c:1:x", state(3))
    assert cache.get("b:1:x") is None
    assert cache.get("a:1:x") == state(1)
    assert len(cache) == 2


def test_states_survive_a_restart_on_disk_and_are_removed_with_the_user(tmp_path) -> None:
    key = prefix_key("u_1", 3, "system prompt")
    PrefixCache(max_entries=1, disk_dir=tmp_path).put(key, state(40))
    restarted = PrefixCache(max_entries=1, disk_dir=tmp_path)
    assert restarted.get(key) == state(40)
    restarted.invalidate_user("u_1")
    assert restarted.get(key) is None
    assert PrefixCache(max_entries=1, disk_dir=tmp_path).get(key) is None
    assert list(tmp_path.iterdir()) == []


def test_a_new_data_version_is_a_different_key() -> None:
    assert prefix_key("u_1", 1, "same text") != prefix_key("u_1", 2, "same text")
    assert prefix_key("u_1", 1, "text a") != prefix_key("u_1", 1, "text b")
