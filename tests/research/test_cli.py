"""`cogenesis fusion train` and `cogenesis eval nll`: real model, real cloud, real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cogenesis.cli import main
from cogenesis.servers import free_port
from edge_agent.collab.gate import Gate
from edge_agent.store import open_store
from research.rules import FIXED_RULE_NAMES

TOKEN = "research-token-" + "x" * 16


def _item(i: int, reference: str) -> dict:
    return {
        "tid": f"r{i}",
        "conversations": [
            {"from": "user", "value": f"Write a short note {i}: say hello to the neighbours"},
            {"from": "assistant", "value": reference},
        ],
        "profile": [{"title": "Old post", "text": f"I fix bikes on Sundays, week {i}."}],
        "additional_profile": f"Name: Theo Lund {i}\nAge: {40 + i}\nOccupation: teacher",
    }


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.json"
    path.write_text(
        json.dumps([_item(0, "Hello neighbours, see you Sunday."), _item(1, "Hi all, thanks!")])
    )
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the file"),
        ("[1, 2]", "item 0: must be an object"),
        (json.dumps([_item(0, "x") | {"additional_profile": "Age: 3"}]), "Name"),
    ],
)
def test_a_bad_dataset_is_one_line_before_the_model_loads(capsys, tmp_path, content, message):
    path = tmp_path / "d.json"
    if content is not None:
        path.write_text(content)
    for argv in (["eval", "nll", str(path)], ["fusion", "train", str(path), "--out", "g.json"]):
        code, _, err = run(capsys, *argv, "--cloud-url", "http://127.0.0.1:9")
        assert code == 2
        assert message in err and "nothing was evaluated" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_setting_is_one_line(capsys, monkeypatch, dataset):
    monkeypatch.setenv("COGENESIS_EDGE_PORT", "abc")
    code, _, err = run(capsys, "eval", "nll", str(dataset))
    assert code == 2
    assert err.startswith("cogenesis: bad setting COGENESIS_EDGE_PORT:")
    assert len(err.strip().splitlines()) == 1


def test_research_commands_use_the_configured_cloud_retries(capsys, monkeypatch, dataset, db):
    # The same wiring as `edge serve`: the client gets the settings' retries, and every
    # attempt is in the ledger. Nothing listens on the port, so each attempt is refused.
    monkeypatch.setenv("COGENESIS_EDGE_CLOUD_RETRIES", "1")
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "eval", "nll", str(dataset), "--cloud-url", url, "--db", db)
    assert code == 2
    assert f"the cloud at {url} is not reachable" in err
    assert len(err.strip().splitlines()) == 1
    rows, total = open_store(db).ledger.query(mode="info")
    assert total == 2 and {r.endpoint for r in rows} == {"/v1/info"}


@pytest.fixture(scope="module")
def cloud_url():
    from cloud_service.settings import CloudSettings
    from cloud_service.testing import shared_default_engine, start_cloud_server

    server = start_cloud_server(CloudSettings(token=TOKEN), shared_default_engine())
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.mark.slow
def test_eval_nll_and_fusion_train_against_a_real_cloud(
    capsys, monkeypatch, dataset, db, tmp_path, cloud_url
):
    monkeypatch.setenv("COGENESIS_CLOUD_TOKEN", TOKEN)
    flags = ("--cloud-url", cloud_url, "--db", db)
    out = tmp_path / "nll.json"
    code, stdout, err = run(capsys, "eval", "nll", str(dataset), "--out", str(out), *flags)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["tasks"] == 2 and report["skipped"] == []
    assert set(report["nll"]) == set(FIXED_RULE_NAMES) | {"gate"}
    assert "NLL/token" in stdout
    # Teacher forcing went through the outbound client: its calls are in the ledger.
    rows, total = open_store(db).ledger.query(mode="eval", limit=500)
    assert total > 0 and all(r.status == "ok" for r in rows)

    gate_path = tmp_path / "gate.json"
    code, stdout, err = run(
        capsys, "fusion", "train", str(dataset), "--out", str(gate_path), *flags
    )
    assert code == 0, err
    assert Gate.load(gate_path).meta["tasks"] == 2
    assert "GateReport" in stdout
