"""Gates are picked by name from one folder; no name opens anything else or blocks."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.collab.features import N_FEATURES
from edge_agent.collab.gate import Gate, GateFileError
from edge_agent.gates import GateLibrary, GateNotFound


def write_gate(path: Path, bias: float = 0.0) -> Gate:
    hidden = 4
    gate = Gate(
        w1=np.full((N_FEATURES, hidden), 0.1),
        b1=np.zeros(hidden),
        w2=np.ones(hidden),
        b2=bias,
        mean=np.zeros(N_FEATURES),
        std=np.ones(N_FEATURES),
    )
    path.write_text(json.dumps(gate.to_dict()))
    return gate


@pytest.fixture
def gates_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    write_gate(folder / "news.json")
    write_gate(folder / "letters.json", bias=1.0)
    (folder / "notes.txt").write_text("not a gate")
    (folder / "broken.json").write_text("{not json")
    os.mkfifo(folder / "fifo.json")
    (folder / "dir.json").mkdir()
    os.symlink("/etc/passwd", folder / "passwd.json")
    (tmp_path / "outside.json").write_text("{}")
    return folder


def test_only_regular_json_files_are_gates(gates_dir: Path) -> None:
    # passwd.json is a symlink to a regular file: listed, but it is not a gate file.
    assert GateLibrary(gates_dir).names() == ["broken", "letters", "news", "passwd"]


def test_a_gate_is_loaded_by_name_and_cached_until_it_changes(gates_dir: Path) -> None:
    library = GateLibrary(gates_dir)
    news = library.get("news")
    assert library.get("news") is news
    assert library.get("letters").b2 == 1.0
    time.sleep(0.01)
    write_gate(gates_dir / "news.json", bias=2.0)
    assert library.get("news").b2 == 2.0


@pytest.mark.parametrize(
    "name", ["../outside", "/etc/passwd", "fifo", "dir", "missing", "", ".hidden", "a/b", None]
)
def test_other_names_are_not_found_and_list_the_gates(gates_dir: Path, name) -> None:
    with pytest.raises(GateNotFound) as caught:
        GateLibrary(gates_dir).get(name)
    message = str(caught.value)
    assert "available gates: broken, letters, news, passwd" in message
    assert str(gates_dir) not in message


def test_a_fifo_never_blocks(gates_dir: Path) -> None:
    done = threading.Event()

    def ask() -> None:
        with pytest.raises(GateNotFound):
            GateLibrary(gates_dir).get("fifo")
        done.set()

    threading.Thread(target=ask, daemon=True).start()
    assert done.wait(timeout=5), "loading a FIFO blocked"


def test_a_file_that_is_not_a_gate_is_a_gate_file_error_naming_only_the_gate(
    gates_dir: Path,
) -> None:
    for name in ("broken", "passwd"):
        with pytest.raises(GateFileError, match=f"gate {name!r} cannot be used") as caught:
            GateLibrary(gates_dir).get(name)
        assert str(gates_dir) not in str(caught.value) and "root" not in str(caught.value)


def test_no_folder_means_no_gates(tmp_path: Path) -> None:
    for library in (GateLibrary(None), GateLibrary(tmp_path / "absent")):
        assert library.names() == []
        with pytest.raises(GateNotFound, match="available gates: none"):
            library.get("news")
