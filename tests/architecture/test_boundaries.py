"""The house rules that keep private context on the device, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETWORK_MODULES = {"httpx", "requests", "urllib", "urllib3", "http", "socket", "aiohttp"}
# Packages both ends may import: the wire protocol and the llama.cpp runtime.
SHARED_BY_BOTH_ENDS = {"shared_protocol", "llama_runtime"}
# Libraries only the runtime talks to, so the two ends cannot grow copies of it again.
RUNTIME_LIBRARIES = {"llama_cpp", "jinja2"}


def imported_modules(package: str, root: Path = ROOT) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[path] = names
    return found


# Which first-party packages each package must not import.
FORBIDDEN = {
    "edge_agent": {"cloud_service", "cogenesis"},
    "cloud_service": {"edge_agent", "cogenesis"},
    "shared_protocol": {"edge_agent", "cloud_service", "cogenesis", "llama_runtime"},
    "llama_runtime": {"edge_agent", "cloud_service", "cogenesis", "research"},
}


@pytest.mark.parametrize(("package", "forbidden"), sorted(FORBIDDEN.items()))
def test_packages_do_not_import_each_other(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in names if name.split(".")[0] in forbidden
        )
        for path, names in imported_modules(package).items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


@pytest.mark.parametrize("end", ["edge_agent", "cloud_service"])
def test_both_ends_use_the_shared_packages(end: str) -> None:
    assert not SHARED_BY_BOTH_ENDS & FORBIDDEN[end]
    imported = {name.split(".")[0] for names in imported_modules(end).values() for name in names}
    assert SHARED_BY_BOTH_ENDS <= imported  # each end uses them rather than a copy


@pytest.mark.parametrize("package", ["edge_agent", "cloud_service", "shared_protocol"])
def test_only_the_runtime_talks_to_llama_cpp(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in names if name.split(".")[0] in RUNTIME_LIBRARIES
        )
        for path, names in imported_modules(package).items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_only_the_outbound_client_opens_network_connections_on_the_edge() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in names if name.split(".")[0] in NETWORK_MODULES
        )
        for path, names in imported_modules("edge_agent").items()
        if path.name != "outbound.py"
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_the_import_scanner_sees_a_forbidden_import(tmp_path: Path) -> None:
    # Guards the guard: a scanner that found nothing would pass the tests above vacuously.
    package = tmp_path / "edge_agent"
    package.mkdir()
    (package / "leak.py").write_text("import httpx\nfrom cloud_service.app import x\n")
    found = imported_modules("edge_agent", root=tmp_path)
    assert found[package / "leak.py"] == {"httpx", "cloud_service.app"}
