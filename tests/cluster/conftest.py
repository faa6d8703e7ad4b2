"""Real servers on 127.0.0.1 for the cluster test: PostgreSQL, an MLflow tracking server, a two-node Ray cluster.

Each fixture starts its server on a free port and stops it at teardown, also when the test fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries (the `postgresql` package), newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.skip("PostgreSQL not installed: apt-get install postgresql")
    return Path(found[-1]).parent


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's binaries), which a test may stop and start."""

    def __init__(self) -> None:
        self.bin_dir, self.port = _pg_bin(), free_port()
        # initdb refuses root: run the server as the `postgres` system user, in a directory it owns.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="automix-pg-"))
        self.data = self.root / "data"
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/automix"

    def pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin_dir / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
        options += " -c fsync=off"
        self.pg("pg_ctl", "start", "-D", str(self.data), "-w", "-l", str(self.root / "server.log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` closes every client connection, as a restart or a crash does."""
        self.pg("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")


@pytest.fixture
def postgres():
    """A `PostgresServer` with an empty database `automix`, stopped at teardown."""
    pytest.importorskip("psycopg2", reason="pip install -e '.[cluster]'")
    server = PostgresServer()
    server.pg("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "--no-sync")
    server.start()
    try:
        server.pg("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "automix")
        yield server
    finally:
        subprocess.run([*server.as_user, str(server.bin_dir / "pg_ctl"), "stop", "-D", str(server.data), "-m",
                        "immediate", "-w"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres):
    """The SQLAlchemy URL of a throwaway PostgreSQL database on 127.0.0.1."""
    return postgres.url


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 (sqlite backend, proxied local artifacts); its http URI."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "mlflow_server.log", "wb")  # noqa: SIM115 - the server writes it until teardown
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    cmd += ["--artifacts-destination", str(tmp_path / "server_artifacts")]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    raise RuntimeError(f"mlflow server: {(tmp_path / 'mlflow_server.log').read_text()}") from None
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, 15)  # the server and its uvicorn workers
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def ray_cluster(monkeypatch):
    """A Ray head node and a worker node on 127.0.0.1, one CPU each; yields (cluster, worker node).

    A driver joining it must not swap 127.0.0.1 for the machine's address, as Ray does for clusters:
    Ray's switch for single-host mode (inherited by driver subprocesses) keeps it on loopback.
    """
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Notice a dead node within seconds (the defaults take about half a minute).
    fast_failure = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(
        initialize_head=True, head_node_args={**node, "include_dashboard": False, "_system_config": fast_failure}
    )
    try:
        worker = cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        cluster.shutdown()
