"""The service as it runs in production, in real processes: gunicorn, the worker, PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from ingest.cli.service import GUNICORN_CONFIG
from store import migrate
from store.database import make_engine
from testkit.processes import BIN, WebServer, free_port, running
from tests.conftest import PIPELINE_SECRET, S3_TOKEN, TOPIC_ARN, WANDB_TOKEN


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """Return the environment of a deployment on ``database_url`` with every source configured."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PIPELINE_WEBHOOK_SECRET": PIPELINE_SECRET,
        "WANDB_WEBHOOK_TOKEN": WANDB_TOKEN,
        "S3_WEBHOOK_TOKEN": S3_TOKEN,
        "SNS_TOPIC_ARNS": TOPIC_ARN,
        **extra,
    }


@contextmanager
def web_server(database_url: str, logs: Path, workers: int = 2, **extra: str) -> Iterator[WebServer]:
    """Serve the ingester on a free loopback port with ``workers`` gunicorn workers; ``extra`` is more environment."""
    port = free_port()
    env = service_env(database_url, HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY=str(workers), **extra)
    command = [str(BIN / "gunicorn"), "--config", str(GUNICORN_CONFIG)]
    with running(command, env, logs / f"gunicorn-{port}.log") as process:
        server = WebServer(process, port, workers)
        server.wait_until_up()
        yield server


@contextmanager
def event_worker(
    database_url: str, logs: Path, timeout: float = 60.0, name: str = "worker", **extra_env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``training-db worker`` as the Procfile's worker line does, once it has started."""
    log = logs / f"{name}.log"
    env = service_env(database_url, **extra_env)
    with running([str(BIN / "training-db"), "worker"], env, log) as worker:
        deadline = time.monotonic() + timeout
        while "worker.started" not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: see {log}")
            time.sleep(0.1)
        yield worker


# --- a private PostgreSQL cluster, to stop and start without disturbing anyone ----------------


def postgres_bindir() -> Path | None:
    """Find initdb and pg_ctl: on the PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    def __init__(self, bindir: Path, directory: Path) -> None:
        self.bindir, self.directory = bindir, directory
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        # initdb and postgres refuse to run as root: run them as the postgres user then.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True, cwd=self.directory)

    def initdb(self) -> None:
        if self.as_owner:
            shutil.chown(self.directory, "postgres")
        data = str(self.directory / "data")
        self._run(str(self.bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        # fsync off: the cluster is stopped cleanly in these tests, never crashed.
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-l",
            str(self.directory / "postgres.log"), "-o", options, "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.directory / "data" / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Start a migrated private cluster for the block; skip without PostgreSQL, unless under CI."""
    bindir = postgres_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        pytest.skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    directory = Path(tempfile.mkdtemp(prefix="training-db-postgres-"))
    cluster = PrivatePostgres(bindir, directory)
    try:
        cluster.initdb()
        cluster.start()
        engine = make_engine(cluster.url)
        migrate.upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def wait_until_ready(url: str, timeout: float = 120.0) -> None:
    """Wait for the served app to answer /readyz: on a loaded machine gunicorn takes a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")
