"""Cloud replicas as separate processes behind a real nginx, round-robin, no stickiness.

nginx runs deploy/nginx/cloud-lb.conf itself, its replica lines and port rewritten to
loopback ports, in a scratch directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cogenesis.servers import free_port, start_cloud_process, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
SBIN = "/usr/sbin:/sbin:/usr/local/sbin"
LB_CONF = ROOT / "deploy" / "nginx" / "cloud-lb.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:{SBIN}")


@dataclass
class Replica:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the process dies mid-request, as a crashed or evicted replica does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Cluster:
    replicas: list[Replica]
    balancer: subprocess.Popen
    url: str
    workdir: Path
    token: str

    def stop(self) -> None:
        if self.balancer.poll() is None:
            self.balancer.terminate()  # nginx: TERM is a fast shutdown
            self.balancer.wait(10)
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.terminate()
                replica.process.wait(20)


def start_replica(
    workdir: Path, token: str, index: int, env: dict[str, str], port: int | None = None
) -> Replica:
    """A cloud process on `port` (a free one by default); not yet known to be healthy."""
    port = port or free_port()
    log = workdir / f"replica-{index}-{port}.log"
    environment = {
        "COGENESIS_CLOUD_TOKEN": token,
        "COGENESIS_CLOUD_PORT": str(port),
        "COGENESIS_CLOUD_N_THREADS": "1",
        **env,
    }
    return Replica(port, start_cloud_process(environment, log), log)


def nginx_config(workdir: Path, listen: int, upstreams: list[int]) -> str:
    """deploy/nginx/cloud-lb.conf in a whole nginx.conf, on loopback ports."""
    site = LB_CONF.read_text()
    servers = "\n".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;" for port in upstreams
    )
    site, replaced = re.subn(r"(?m)^    server cloud-\d+:8600 [^\n]*\n", "", site)
    assert replaced >= 1, "deploy/nginx/cloud-lb.conf has no replica lines"
    site = site.replace("    keepalive ", f"{servers}\n    keepalive ", 1)
    site, replaced = re.subn(r"listen 8600;", f"listen 127.0.0.1:{listen};", site)
    assert replaced == 1, "deploy/nginx/cloud-lb.conf has no 'listen 8600;'"
    # Workers of a root master run as root here: the scratch directory is root's.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/nginx-access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{site}
}}
"""


def start_cluster(workdir: Path, token: str, n: int = 2, env: dict | None = None) -> Cluster:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    replicas = [start_replica(workdir, token, i, env or {}) for i in range(n)]
    balancer = None
    try:
        for replica in replicas:
            wait_healthy(replica.url, replica.process, replica.log)
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_config(workdir, port, [r.port for r in replicas]))
        log = workdir / "nginx.log"
        with log.open("wb") as out:
            balancer = subprocess.Popen(
                [binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, balancer, workdir / "nginx-error.log", timeout_s=20)
        return Cluster(replicas, balancer, url, workdir, token)
    except BaseException:
        if balancer is not None and balancer.poll() is None:
            balancer.terminate()
        for replica in replicas:
            replica.kill()
        raise
