"""A real PostgreSQL server for the tests and the benchmark: initdb into a temporary directory and
``pg_ctl start`` on a free port on 127.0.0.1, stopped at the end. Needs PostgreSQL's server programs
(Debian: ``apt-get install postgresql``; scripts/test.sh installs them). As root, the server runs as
the user ``segmetrics-test`` (created if missing): PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

TEST_USER = "segmetrics-test"


class ServerUnavailableError(Exception):
    """PostgreSQL's server programs are missing or the server did not start."""


def _bin(name: str) -> str:
    for found in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return found
    if found := shutil.which(name):
        return found
    raise ServerUnavailableError(f"{name} not found (install PostgreSQL's server: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as server: server.new_database()`` gives a fresh database's URL."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="segmetrics-pg-"))
        self.port = _free_port()
        self.prefix: list[str] = []

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> PostgresServer:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if os.geteuid() == 0:
            if subprocess.run(["id", TEST_USER], capture_output=True, check=False).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", TEST_USER], capture_output=True, check=True)
            shutil.chown(self.dir, TEST_USER)
            self.prefix = ["runuser", "-u", TEST_USER, "--"]
        data = self.dir / "data"
        done = self._run(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise ServerUnavailableError(f"initdb failed: {done.stderr.strip()[-500:]}")
        options = f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=50"
        done = self._run(pg_ctl, "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "-t", "60", "start")
        if done.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise ServerUnavailableError(f"pg_ctl start failed: {(done.stderr + log).strip()[-500:]}")
        return self

    def stop(self) -> None:
        data = self.dir / "data"
        if (data / "postmaster.pid").exists():
            self._run(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
