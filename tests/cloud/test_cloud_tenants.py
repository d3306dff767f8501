"""Tenants: hashed tokens from a file or the environment, each with a name; sessions are
private to the tenant that opened them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud_service.engines import Engine
from cloud_service.settings import CloudSettings
from cloud_service.tenants import (
    TenantDirectory,
    TenantLimits,
    TenantsFileError,
    TenantSpec,
    hash_token,
    load_tenants_file,
)
from cloud_service.testing import RunningCloud

ACME, BETA = "acme-token-0123456789abcdef", "beta-token-0123456789abcdef"


def spec(name: str, token: str, **limits: int) -> TenantSpec:
    return TenantSpec(name=name, token_sha256=hash_token(token), **limits)


def test_a_token_maps_to_its_tenant_and_a_wrong_one_to_none() -> None:
    directory = TenantDirectory([spec("acme", ACME), spec("beta", BETA)])
    assert directory.authenticate(ACME).name == "acme"
    assert directory.authenticate(BETA).name == "beta"
    assert directory.authenticate("acme-token") is None
    assert directory.authenticate("") is None


def test_limits_left_out_fall_back_to_the_server_defaults() -> None:
    defaults = TenantLimits(requests_per_minute=60, tokens_per_minute=1000, max_sessions=4)
    directory = TenantDirectory([spec("acme", ACME, max_sessions=9)], defaults)
    assert directory.authenticate(ACME).limits == TenantLimits(60, 1000, 9)


@pytest.mark.parametrize(
    "specs",
    [
        [spec("acme", ACME), spec("acme", BETA)],
        [spec("acme", ACME), spec("beta", ACME)],
    ],
    ids=["same name", "same token"],
)
def test_a_name_or_a_token_configured_twice_is_refused(specs: list[TenantSpec]) -> None:
    with pytest.raises(TenantsFileError):
        TenantDirectory(specs)


def test_the_toml_and_json_files_hold_hashes_not_tokens(tmp_path: Path) -> None:
    toml = tmp_path / "tenants.toml"
    toml.write_text(
        f'[[tenants]]\nname = "acme"\ntoken_sha256 = "{hash_token(ACME)}"\n'
        "requests_per_minute = 5\n"
    )
    as_json = tmp_path / "tenants.json"
    as_json.write_text(
        json.dumps({"tenants": [{"name": "beta", "token_sha256": hash_token(BETA)}]})
    )
    assert load_tenants_file(toml) == [spec("acme", ACME, requests_per_minute=5)]
    assert load_tenants_file(as_json) == [spec("beta", BETA)]
    assert ACME not in toml.read_text()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[[tenants]]\nname = "acme"\ntoken_sha256 = "plain-token"\n', "token_sha256"),
        ('[[tenants]]\nname = "a b"\ntoken_sha256 = "' + "0" * 64 + '"\n', "name"),
        ('[[tenants]]\nname = "acme"\n', "token_sha256"),
        ('[[tenants]]\nname = "x"\ntoken = "t"\ntoken_sha256 = "' + "0" * 64 + '"\n', "token"),
        ("tenants = 3\n", "must be a list"),
        ("[[tenant]]\n", "one list named 'tenants'"),
        ("[[tenants]\n", "not valid"),
    ],
)
def test_a_bad_tenants_file_names_the_problem(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(content)
    with pytest.raises(TenantsFileError, match=expected) as caught:
        load_tenants_file(path)
    assert str(path) in str(caught.value)


def test_a_missing_tenants_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TenantsFileError, match="cannot read"):
        load_tenants_file(tmp_path / "nope.toml")


def test_tenants_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [{"name": "acme", "token_sha256": hash_token(ACME), "max_sessions": 2}]
    monkeypatch.setenv("COGENESIS_CLOUD_TENANTS", json.dumps(entries))
    monkeypatch.setenv("COGENESIS_CLOUD_TOKEN", BETA)
    directory = CloudSettings().tenant_directory()
    assert directory.names == ["acme", "default"]
    assert directory.authenticate(ACME).limits.max_sessions == 2
    assert directory.authenticate(BETA).name == "default"


# -- on a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenants_cloud(
    cloud_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCloud]:
    path = tmp_path_factory.mktemp("tenants") / "tenants.toml"
    path.write_text(
        "".join(
            f'[[tenants]]\nname = "{name}"\ntoken_sha256 = "{hash_token(token)}"\n'
            for name, token in [("acme", ACME), ("beta", BETA)]
        )
    )
    cloud = RunningCloud.start(CloudSettings(tenants_file=path), cloud_engine)
    try:
        yield cloud
    finally:
        cloud.stop()


def client_for(cloud: RunningCloud, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=cloud.base_url, headers=headers, timeout=120)


@pytest.mark.slow
def test_each_tenant_token_is_accepted_and_info_needs_one(tenants_cloud: RunningCloud) -> None:
    for token in (ACME, BETA):
        with client_for(tenants_cloud, token) as client:
            assert client.get("/v1/info").status_code == 200
    assert httpx.get(f"{tenants_cloud.base_url}/v1/info").status_code == 401
    with client_for(tenants_cloud, hash_token(ACME)) as client:  # the hash is no token
        assert client.get("/v1/info").status_code == 401


@pytest.mark.slow
def test_a_session_is_private_to_the_tenant_that_opened_it(
    tenants_cloud: RunningCloud, prompt_tokens: list[int]
) -> None:
    with client_for(tenants_cloud, ACME) as acme, client_for(tenants_cloud, BETA) as beta:
        opened = acme.post("/v1/sessions", json={"prompt_token_ids": prompt_tokens})
        assert opened.status_code == 201, opened.text
        sid = opened.json()["session_id"]
        step = beta.post(f"/v1/sessions/{sid}/step", json={"append": [prompt_tokens[-1]]})
        assert step.status_code == 404 and step.json()["error"]["code"] == "session_not_found"
        assert beta.delete(f"/v1/sessions/{sid}").status_code == 404
        assert acme.post(f"/v1/sessions/{sid}/step", json={}).status_code == 200
        assert acme.delete(f"/v1/sessions/{sid}").status_code == 204
