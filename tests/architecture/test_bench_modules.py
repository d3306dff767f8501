"""The benchmarks run as modules of the checkout, without editing the import path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def edits_the_import_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in ast.walk(tree)
    )


def test_no_bench_module_touches_sys_path_or_imports_tests() -> None:
    modules = sorted((ROOT / "bench").glob("*.py"))
    assert modules
    assert [p.name for p in modules if edits_the_import_path(p)] == []
    assert [p.name for p in modules if "from tests" in p.read_text(encoding="utf-8")] == []


def test_the_path_check_sees_a_path_edit(tmp_path: Path) -> None:
    hacked = tmp_path / "hacked.py"
    hacked.write_text("import sys\nsys.path.insert(0, '..')\n")
    assert edits_the_import_path(hacked)


def run_bench(*args: str) -> subprocess.CompletedProcess:
    # From the checkout with no PYTHONPATH: `python -m bench.NAME` must find it all.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("bench", ["leakage", "logits"])  # bench.sketch: below
def test_a_bench_module_starts(bench: str) -> None:
    done = run_bench(f"bench.{bench}", "--help")
    assert done.returncode == 0, done.stderr
    assert "--tasks" in done.stdout


def test_a_bench_refuses_a_missing_dataset_in_one_line(tmp_path: Path) -> None:
    done = run_bench("bench.sketch", str(tmp_path / "none.json"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"bench sketch: no such dataset: {tmp_path / 'none.json'}"
