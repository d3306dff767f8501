"""`cogenesis data synthesize` against the cloud's OpenAI route on the real SmolLM2.

The model is far too small to write good profiles; what this proves is that whatever it
writes is parsed, junk is rejected with a reason and retried with a new request, only
validated users are written, and a rerun (also after a crash mid-step) sends nothing
twice and ends the same.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from edge_agent.cli import main as edge_cli
from research.jsonl import JsonlTable
from research.synthesize.cli import main as synthesize
from research.synthesize.pipeline import STEPS
from research.synthesize.schemas import read_text

pytestmark = pytest.mark.slow  # real model, real server


def _argv(cloud, out: Path) -> list[str]:
    return [
        "--llm-url", cloud.url, "--llm-model", cloud.model,
        "--api-key-env", "COGENESIS_CLOUD_TOKEN",
        "--groups", "1", "--users-per-group", "1", "--tasks-per-user", "2",
        "--history-per-user", "1", "--seed", "0", "--out", str(out),
        "--max-tokens", "160", "--attempts", "3", "--min-text-chars", "40",
        "--concurrency", "2",
    ]  # fmt: skip


def _accounted_attempts(work: Path) -> int:
    """Every reply a step saw is either its key's accepted value or a counted rejection."""
    total = 0
    for step in STEPS:
        path = work / f"{step}.jsonl"
        if not path.exists():
            continue
        for _, outcome in JsonlTable(path).items():
            assert outcome["attempts"] == len(outcome["rejected"]) + outcome["ok"]
            assert all(isinstance(r, str) and r for r in outcome["rejected"])
            assert (outcome["value"] is not None) == outcome["ok"]
            total += outcome["attempts"]
    return total


def test_synthesize_on_smollm2_writes_only_valid_users_and_resumes(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "synthetic.json"
    work = tmp_path / "synthetic.json.work"
    code = synthesize(_argv(research_cloud, out))
    first = capsys.readouterr()
    sent = len(JsonlTable(work / "responses.jsonl"))
    assert sent > 0 and f"requests sent now: {sent}" in first.out
    # One request per attempt, each a new one (its own seed): nothing answered twice.
    assert _accounted_attempts(work) == sent
    if code == 0:
        for name in ("", ".train", ".dev", ".test"):
            path = out.with_name(f"synthetic{name}.json")
            db = f"sqlite:///{tmp_path / 'store.db'}"
            assert edge_cli(["profiles", "import", str(path), "--db", db]) == 0
        for item in json.loads(out.read_text()):
            for text in [item["conversations"][1]["value"], *(p["text"] for p in item["profile"])]:
                assert read_text(text, item["conversations"][0]["value"], 40)[0] == text
    else:
        assert code == 1 and "no user survived" in first.err
        assert not out.exists()  # junk is never written
    written = out.read_text() if out.exists() else None

    # A rerun: everything is in the checkpoints; no request is sent, the result is equal.
    assert synthesize(_argv(research_cloud, out)) == code
    assert "requests sent now: 0" in capsys.readouterr().out

    # A crash mid-step: the last checkpoint line is lost. The rerun redoes that key from
    # the response cache alone and ends the same.
    last = [s for s in STEPS if (work / f"{s}.jsonl").exists()][-1]
    lines = (work / f"{last}.jsonl").read_text().splitlines(keepends=True)
    (work / f"{last}.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])
    assert synthesize(_argv(research_cloud, out)) == code
    assert "requests sent now: 0" in capsys.readouterr().out
    assert (out.read_text() if out.exists() else None) == written
    assert len(JsonlTable(work / "responses.jsonl")) == sent


def test_a_work_dir_of_other_settings_is_refused(
    research_cloud, cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "d.json"
    (tmp_path / "d.json.work").mkdir()
    (tmp_path / "d.json.work" / "run.json").write_text(json.dumps({"seed": 99}))
    assert synthesize(_argv(research_cloud, out)) == 2
    assert "other settings" in capsys.readouterr().err


def test_an_unreachable_llm_is_a_clear_error(
    cloud_token, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nowhere = type("Nowhere", (), {"url": f"http://127.0.0.1:{port}", "model": "m"})
    argv = _argv(nowhere, tmp_path / "x.json")
    assert synthesize(argv + ["--attempts", "1"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and "Traceback" not in err
