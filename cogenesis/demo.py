"""`cogenesis demo`: both ends on 127.0.0.1, one task in sketch mode, what left the device.

The two ends run as separate processes, as they would on two machines; the demo talks
to the edge only through its HTTP endpoint, like an app would.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import httpx

from cogenesis.servers import free_port, wait_healthy

EXAMPLE_PROFILE = "example_profile.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cogenesis demo", description=__doc__)
    parser.add_argument("--task", help="writing task (default: the example's first task)")
    parser.add_argument("--profiles", type=Path, help="a CoGenesis-format file to import")
    parser.add_argument(
        "--mode",
        default="cogenesis-sketch",
        choices=["cogenesis-sketch", "cogenesis-logits", "local"],
    )
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--workdir", type=Path, help="keep the demo's database here")
    args = parser.parse_args(argv)

    profiles = args.profiles or _example_path()
    if not profiles.is_file():
        print(f"cogenesis demo: no such file: {profiles}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cogenesis-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'edge.db'}"
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "COGENESIS_CLOUD_TOKEN": token}

    _step("Importing the example profile into the private store")
    imported = _run_cli(["profiles", "import", str(profiles), "--db", db_url], env)
    print(textwrap.indent(imported.strip(), "  "))
    user_id = _first_user_id(imported)
    task = args.task or _first_task(profiles)
    _step(f"Creating a local API key that acts as {user_id} (as an app would hold)")
    created = _run_cli(["keys", "create", "--user", user_id, "--name", "demo", "--db", db_url], env)
    api_key = created.strip().splitlines()[-1]
    print(f"  {created.strip().splitlines()[0]}")

    with ExitStack() as stack:
        cloud_port, edge_port = free_port(), free_port()
        _step(f"Starting the cloud service on 127.0.0.1:{cloud_port}")
        cloud = _start(["cloud", "serve", "--port", str(cloud_port)], env, workdir / "cloud.log")
        stack.callback(_stop, cloud)
        _wait_healthy(f"http://127.0.0.1:{cloud_port}", cloud, workdir / "cloud.log")
        _step(f"Starting the edge agent on 127.0.0.1:{edge_port}")
        edge = _start(
            [
                "edge",
                "serve",
                "--port",
                str(edge_port),
                "--db",
                db_url,
                "--cloud-url",
                f"http://127.0.0.1:{cloud_port}",
            ],
            env,
            workdir / "edge.log",
        )
        stack.callback(_stop, edge)
        edge_url = f"http://127.0.0.1:{edge_port}"
        _wait_healthy(edge_url, edge, workdir / "edge.log")

        _step(f"Task ({args.mode}, user {user_id})")
        print(textwrap.indent(textwrap.fill(task, 88), "  "))
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {api_key}"}  # the key names the user
        with httpx.Client(base_url=edge_url, headers=headers, timeout=600) as client:
            reply = client.post(
                "/v1/chat/completions",
                json={
                    "model": args.mode,
                    "messages": [{"role": "user", "content": task}],
                    "max_tokens": args.max_tokens,
                },
            )
            if reply.status_code != 200:
                print(
                    f"cogenesis demo: the edge answered {reply.status_code}: {reply.text}",
                    file=sys.stderr,
                )
                return 1
            body = reply.json()
            ledger = client.get("/v1/ledger").json()  # a user key sees its own entries
        elapsed = time.perf_counter() - started
        report = body["cogenesis"]
        if report.get("sketch_points"):
            _step("Outline from the cloud (it saw only the task title)")
            for i, point in enumerate(report["sketch_points"], 1):
                print(f"  {i}. {point}")
        _step("Final text, written on the device with the private profile")
        for paragraph in body["choices"][0]["message"]["content"].split("\n"):
            print(textwrap.indent(textwrap.fill(paragraph, 88), "  ") if paragraph else "")
        _step("Exactly what left the device (from the privacy ledger)")
        for entry in sorted(ledger["data"], key=lambda e: e["id"]):
            print(
                f"  {entry['method']} {entry['endpoint']}  {entry['bytes_up']} bytes up, "
                f"{entry['bytes_down']} down, status {entry['status']}"
            )
            print(textwrap.indent(_payload_text(entry), "    "))
        _step("Summary")
        summary = {
            k: report.get(k)
            for k in (
                "mode",
                "cloud_calls",
                "bytes_up",
                "bytes_down",
                "degraded",
                "guard_policy",
                "small_model_s",
                "cloud_wait_s",
                "total_s",
            )
        }
        print(textwrap.indent(json.dumps(summary, indent=2), "  "))
        print(f"  wall time {elapsed:.1f} s; logs and database in {workdir}")
    return 0


def _example_path() -> Path:
    return Path(str(resources.files("cogenesis").joinpath("examples", EXAMPLE_PROFILE)))


def _first_task(path: Path) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data[0]["conversations"][0]["value"]


def _first_user_id(import_output: str) -> str:
    for line in import_output.splitlines():
        for word in line.replace(",", " ").split():
            if word.startswith("u_"):
                return word
    raise SystemExit("cogenesis demo: the import printed no user id")


def _payload_text(entry: dict) -> str:
    payload = entry.get("payload") or ""
    try:
        return json.dumps(json.loads(payload), indent=2)
    except (TypeError, ValueError):
        return str(payload)


def _cli() -> list[str]:
    return [sys.executable, "-m", "cogenesis"]


def _run_cli(args: list[str], env: dict) -> str:
    done = subprocess.run(_cli() + args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cogenesis demo: `cogenesis {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(_cli() + args, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    try:
        wait_healthy(url, process, log, timeout_s=timeout)
    except RuntimeError as exc:
        raise SystemExit(f"cogenesis demo: {exc}; see {log}") from None


def _step(title: str) -> None:
    print(f"\n== {title}")
