"""No import cycles in any of our packages, lazy and type-checking imports included."""

from __future__ import annotations

from pathlib import Path

from tests.architecture.module_graph import ROOT, cycles, import_graph


def test_no_package_has_an_import_cycle() -> None:
    graph = import_graph()
    assert "edge_agent.collab.fusion" in graph and "research.nll" in graph  # the scan ran
    assert cycles(graph) == []


def test_fusion_imports_nothing_of_the_project() -> None:
    # fusion.py is pure (numpy only), so every module may import it without a cycle.
    assert import_graph()["edge_agent.collab.fusion"] == set()
    text = (ROOT / "edge_agent" / "collab" / "fusion.py").read_text()
    assert "import edge_agent" not in text and "from edge_agent" not in text


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_finder_sees_a_planted_cycle_through_a_lazy_relative_import(
    tmp_path: Path,
) -> None:
    # Guards the guard: a finder that saw nothing would pass the test above vacuously.
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg.sub import b\n    return b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "from ..c import g\n",
            "pkg/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import a\n",
            "pkg/d.py": "import pkg.a\n",  # imports into the loop, is not part of it
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_the_cycle_finder_passes_a_graph_without_cycles(tmp_path: Path) -> None:
    _package(tmp_path, {"pkg/__init__.py": "from pkg import a\n", "pkg/a.py": "import os\n"})
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": set()}
    assert cycles(graph) == []
