"""`cogenesis cloud serve` refuses unsafe or impossible starts with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud_service import cli


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COGENESIS_CLOUD_TOKEN", raising=False)


@pytest.mark.parametrize("token", [None, "", "   "])
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_serving_without_any_tenant_is_refused(
    host: str,
    token: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if token is not None:
        monkeypatch.setenv("COGENESIS_CLOUD_TOKEN", token)
    assert cli.main(["serve", "--host", host]) == 2
    assert "COGENESIS_CLOUD_TOKEN" in capsys.readouterr().err


def test_missing_model_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COGENESIS_CLOUD_TOKEN", "a-token-for-this-test")
    missing = tmp_path / "nope.gguf"
    assert cli.main(["serve", "--model", str(missing)]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_bad_arguments_exit_2_without_raising() -> None:
    assert cli.main(["serve", "--engine", "tensorflow"]) == 2
    assert cli.main([]) == 2


def test_python_dash_m_cloud_service_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cloud_service", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and "--host" in out.stdout
