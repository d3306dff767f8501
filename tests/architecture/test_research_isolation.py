"""Research tools stay out of the request path, and away from the cloud's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.architecture.module_graph import ROOT, import_graph

PROBE = """
import json, sys
import edge_agent.app
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_edge_app_loads_no_research_module() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    # The probe really walked the request path, down to fusion and the gate loader...
    assert {"edge_agent.app", "edge_agent.collab.fusion", "edge_agent.collab.gate"} <= loaded
    # ...and no research module came with it.
    assert sorted(m for m in loaded if m == "research" or m.startswith("research.")) == []


def _importers(packages: set[str], of: str) -> dict[str, list[str]]:
    graph = import_graph()
    return {
        module: sorted(t for t in targets if t.split(".")[0] == of)
        for module, targets in graph.items()
        if module.split(".")[0] in packages and any(t.split(".")[0] == of for t in targets)
    }


def test_neither_end_imports_research() -> None:
    assert _importers({"edge_agent", "cloud_service", "shared_protocol"}, "research") == {}


def test_research_never_imports_the_cloud_service() -> None:
    assert "research.cli" in import_graph()  # the package was scanned
    assert _importers({"research"}, "cloud_service") == {}


def test_the_import_check_sees_a_research_import() -> None:
    # Guards the guard: the checks above would pass vacuously if the graph missed edges.
    assert _importers({"cogenesis"}, "research") == {"cogenesis.cli": ["research.cli"]}
