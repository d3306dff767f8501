"""Both ends' CLIs: every setting a flag, flags over env over defaults, one line per bad value."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_service import cli as cloud_cli
from cloud_service.settings import CloudSettings
from cogenesis.cli import main
from edge_agent.settings import EdgeSettings
from shared_protocol.hosts import is_loopback
from shared_protocol.settings_cli import (
    SettingsError,
    add_settings_flags,
    env_names,
    flag_name,
    load_settings,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "cogenesis" / "examples" / "example_profile.json"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("COGENESIS_EDGE_", "COGENESIS_CLOUD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COGENESIS_HOME", str(tmp_path / "home"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's --help and usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def squash(text: str) -> str:
    """Help text without whitespace: argparse wraps lines wherever it likes."""
    return "".join(text.split())


@pytest.mark.parametrize("settings_cls", [EdgeSettings, CloudSettings])
def test_every_setting_has_a_description(settings_cls: type[BaseSettings]) -> None:
    fields = settings_cls.model_fields
    assert [name for name, info in fields.items() if not (info.description or "").strip()] == []


@pytest.mark.parametrize(
    ("argv", "settings_cls", "env_only"),
    [
        (["edge", "serve", "--help"], EdgeSettings, {"cloud_token"}),
        (["cloud", "serve", "--help"], CloudSettings, cloud_cli.NOT_FLAGS),
    ],
)
def test_serve_help_lists_every_setting_with_its_description_and_default(
    capsys, argv: list[str], settings_cls: type[BaseSettings], env_only: set[str]
) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 0
    shown = squash(out)
    for name, info in settings_cls.model_fields.items():
        if name in env_only:  # a token never goes on argv, where others could read it
            assert flag_name(name) not in out.split()
            continue
        default = "unset" if info.default is None else info.default
        assert flag_name(name) in out
        assert squash(info.description or "") in shown, name
        assert squash(f"env {env_names(settings_cls, name)[0]}; default {default}") in shown


def test_flags_override_env_which_overrides_defaults(monkeypatch) -> None:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, EdgeSettings, ["port", "guard_policy"])
    assert load_settings(EdgeSettings, parser.parse_args([])).port == 8700
    monkeypatch.setenv("COGENESIS_EDGE_PORT", "8800")
    monkeypatch.setenv("COGENESIS_EDGE_GUARD_POLICY", "block")
    settings = load_settings(EdgeSettings, parser.parse_args(["--port", "8900"]))
    assert (settings.port, settings.guard_policy) == (8900, "block")


def test_a_store_flag_overrides_the_store_variable(capsys, monkeypatch, tmp_path) -> None:
    full, empty = f"sqlite:///{tmp_path / 'full.db'}", f"sqlite:///{tmp_path / 'empty.db'}"
    assert run(capsys, "profiles", "import", str(EXAMPLE), "--db", full)[0] == 0
    monkeypatch.setenv("COGENESIS_EDGE_DB_URL", full)
    listed = run(capsys, "profiles", "list")[1]
    assert listed.startswith("u_")
    assert run(capsys, "profiles", "list", "--db", empty)[1] == ""
    assert run(capsys, "profiles", "list", "--db-url", full)[1] == listed


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["edge", "serve"], {"COGENESIS_EDGE_PORT": "abc"}, "COGENESIS_EDGE_PORT"),
        (["edge", "serve", "--port", "abc"], {}, "--port"),
        (["edge", "serve", "--workers", "0"], {}, "--workers"),
        (["edge", "serve", "--guard-policy", "maybe"], {}, "--guard-policy"),
        (["profiles", "list"], {"COGENESIS_EDGE_PORT": "abc"}, "COGENESIS_EDGE_PORT"),
        (["profiles", "list", "--db", "not a url"], {}, "--db-url"),
        (
            ["profiles", "import", str(EXAMPLE)],
            {"COGENESIS_EDGE_DB_URL": "nosuchdialect://x"},
            "COGENESIS_EDGE_DB_URL",
        ),
        (["ledger", "show"], {"COGENESIS_EDGE_N_CTX": "12"}, "COGENESIS_EDGE_N_CTX"),
        (["ledger", "verify", "--db", "not a url"], {}, "--db-url"),
        (["cloud", "serve"], {"COGENESIS_CLOUD_PORT": "abc"}, "COGENESIS_CLOUD_PORT"),
        (["cloud", "serve"], {"COGENESIS_CLOUD_MAX_TOP_K": "999"}, "COGENESIS_CLOUD_MAX_TOP_K"),
        (["cloud", "serve", "--port", "70000"], {}, "--port"),
        (["cloud", "serve", "--engine", "tensorflow"], {}, "--engine"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    capsys, monkeypatch, argv: list[str], env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("cogenesis")
    assert f"bad setting {named}:" in err


def test_the_command_line_prints_one_line_for_a_bad_variable(tmp_path) -> None:
    env = {**os.environ, "COGENESIS_EDGE_PORT": "abc", "COGENESIS_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cogenesis", "profiles", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("cogenesis: bad setting COGENESIS_EDGE_PORT:")
    assert done.stderr.count("\n") == 1 and "'abc'" in done.stderr


class ExampleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLI_TEST_", populate_by_name=True)

    api_token: str = Field("x" * 20, min_length=20, description="A secret.")
    level: int = Field(
        1, validation_alias=AliasChoices("CLI_TEST_LEVEL", "CLI_TEST_OLD_LEVEL"), description="L."
    )


def test_text_values_are_never_echoed(monkeypatch) -> None:
    monkeypatch.setenv("CLI_TEST_API_TOKEN", "hunter2")
    with pytest.raises(SettingsError) as info:
        load_settings(ExampleSettings, argparse.Namespace())
    assert "CLI_TEST_API_TOKEN" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_an_aliased_variable_is_named_as_the_user_set_it(monkeypatch) -> None:
    monkeypatch.setenv("CLI_TEST_OLD_LEVEL", "high")
    with pytest.raises(SettingsError, match="bad setting CLI_TEST_OLD_LEVEL: .*'high'"):
        load_settings(ExampleSettings, argparse.Namespace())


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_one_loopback_rule_for_both_ends(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_edge_warns_when_it_listens_beyond_loopback(capsys, tmp_path) -> None:
    missing = tmp_path / "missing.gguf"  # stops the start right after the warning
    code, _, err = run(capsys, "edge", "serve", "--host", "0.0.0.0", "--model", str(missing))
    assert code == 2
    assert "warning: the edge agent listens on 0.0.0.0" in err
    assert "model file not found" in err
    code, _, err = run(capsys, "edge", "serve", "--host", "::1", "--model", str(missing))
    assert code == 2
    assert "warning" not in err
