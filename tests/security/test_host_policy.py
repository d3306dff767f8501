"""The Host and origin rules on their own (the HTTP behaviour is in test_edge_access)."""

from __future__ import annotations

import pytest

from edge_agent.auth.host import HostPolicy, host_name, is_loopback


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "app.localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]"]
)
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["attacker.example", "localhost.attacker.example", "0.0.0.0", "10.0.0.1", "", "::"]
)
def test_names_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8700", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8700", "::1"),
        ("[::1]", "::1"),
        ("edge.lan:80", "edge.lan"),
    ],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_the_policy_allows_loopback_configured_hosts_and_the_bind_address() -> None:
    policy = HostPolicy("192.168.1.5", allowed_hosts=["Edge.LAN"])
    assert policy.allows_host("localhost:8700")
    assert policy.allows_host("edge.lan:8700")
    assert policy.allows_host("192.168.1.5:8700")
    assert not policy.allows_host("attacker.example")
    assert not policy.allows_host(None) and not policy.allows_host("")
    assert not HostPolicy("0.0.0.0").allows_host("0.0.0.0:8700")


def test_an_origin_passes_if_it_is_the_request_s_own_or_listed() -> None:
    policy = HostPolicy("127.0.0.1", cors_origins=["http://localhost:3000/"])
    assert policy.allows_origin("http://127.0.0.1:8700", "127.0.0.1:8700")
    assert policy.allows_origin("http://localhost:3000", "127.0.0.1:8700")
    assert not policy.allows_origin("http://attacker.example", "127.0.0.1:8700")
    assert not policy.allows_origin("null", "127.0.0.1:8700")
