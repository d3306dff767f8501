"""`cogenesis profiles import`: disagreeing items are refused, or merged with a warning."""

from __future__ import annotations

import json
from pathlib import Path

from cogenesis.cli import main


def item(tid: str, private: str) -> dict:
    return {
        "tid": tid,
        "conversations": [{"from": "user", "value": "Write a note."}],
        "profile": [],
        "additional_profile": f"Name: Ada Moss\nAge: 41\nPrivacy_info: {private}",
    }


def test_disagreeing_items_are_refused_unless_merge(capsys, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'edge.db'}"
    path = tmp_path / "people.json"
    path.write_text(json.dumps([item("1", "Keeps bees"), item("2", "Owes money")]))

    assert main(["profiles", "import", str(path), "--db", db]) == 2
    err = capsys.readouterr().err
    assert "item 1" in err and "item 0" in err and "nothing was imported" in err
    assert "bees" not in err and "money" not in err

    assert main(["profiles", "import", str(path), "--merge", "--db", db]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("u_") and "warning" in err and "kept item 0" in err
