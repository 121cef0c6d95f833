"""Running the service: migrate, serve, worker, and sending a pipeline event."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

import store
from handlers.events import EventKind
from ingest.cli.common import load_settings
from ingest.client import SendError, send_event
from store import DatabaseUnavailable, database_location

log = logging.getLogger("worker")

# By path, not `python:ingest.gunicorn_conf`: importing it as a module imports the ingest
# package, and psycopg and SQLAlchemy with it, in gunicorn's master, before gevent patches the
# workers' standard library; psycopg would then block a whole worker on every database wait.
GUNICORN_CONFIG = Path(__file__).resolve().parents[1] / "gunicorn_conf.py"
PIPELINE_TYPES = [kind.value for kind in EventKind if kind.value.startswith("run.")]


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest migration."""
    settings = load_settings(create=True)
    before = store.current_revision()
    store.upgrade_schema()
    after = store.current_revision()
    where = database_location(settings.database_url)
    click.echo(
        f"database {where}: schema {before or 'empty'} -> {after}"
        if before != after
        else f"database {where}: schema at {after}"
    )


@click.command()
@click.option("--bind", default=None, help="Address to listen on (default: 0.0.0.0:$PORT or :8000).")
@click.option(
    "--workers", type=int, default=None, help="Web processes (default: $WEB_CONCURRENCY or 2 x cores + 1)."
)
@click.option("--with-worker", is_flag=True, help="Also run one event worker beside the web server.")
def serve(bind: str | None, workers: int | None, with_worker: bool) -> None:
    """Serve the webhook endpoints with gunicorn (the Procfile's web process)."""
    command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG)]
    if bind:
        command += ["--bind", bind]
    if workers:
        command += ["--workers", str(workers)]
    env = dict(os.environ)
    metrics_dir = None
    worker = None
    if with_worker:
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # The worker's counters reach the web's /metrics through a folder both write to.
            metrics_dir = tempfile.mkdtemp(prefix="training-db-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        worker = subprocess.Popen([sys.executable, "-m", "ingest.cli", "worker"], env=env)
    web = subprocess.Popen(command, env=env)

    def forward(signum: int, _: Any) -> None:
        web.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = web.wait()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


@click.command()
@click.option("--once", is_flag=True, help="Process what is due, then exit.")
def worker(once: bool) -> None:
    """Process inbox events: run handlers, retry failures, sync W&B projects."""
    from ingest.worker import Worker

    settings = load_settings()
    if not _wait_for_database(None if once else 30.0):
        raise click.ClickException(
            "database schema is not at the newest migration: run `training-db migrate`"
        )
    process = Worker(settings)
    if once:
        total = 0
        while (claimed := process.run_once()) > 0:
            total += claimed
        click.echo(f"processed {total} event(s)")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    process.run(stop)


def _wait_for_database(longest_wait: float | None) -> bool:
    """Tell whether the schema is current, waiting with backoff while the database is unreachable.

    With ``longest_wait`` None, one outage is an error (``worker --once``).
    """
    wait = 1.0
    down = False
    while True:
        try:
            current = store.schema_is_current()
        except DatabaseUnavailable as error:
            if longest_wait is None:
                raise
            if not down:
                log.error("worker.database_unavailable retrying error=%s", error)
                down = True
            time.sleep(wait)
            wait = min(wait * 2, longest_wait)
            continue
        if down:
            log.info("worker.database_available")
        return current


def _read_data(value: str) -> dict[str, Any]:
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as error:
        raise click.ClickException(f"cannot read --data file {value[1:]}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    return data


@click.command()
@click.argument("event_type", type=click.Choice(PIPELINE_TYPES))
@click.option("--run-id", help="The run the event is about (default: the run_id in --data).")
@click.option("--data", "data", default="{}", help="Event data as JSON, or @FILE to read it from a file.")
@click.option("--url", default=None, help="Service URL (default: $TRAINING_DB_URL or http://127.0.0.1:8000).")
@click.option("--secret", default=None, help="Signing secret (default: $PIPELINE_WEBHOOK_SECRET).")
def send(event_type: str, run_id: str | None, data: str, url: str | None, secret: str | None) -> None:
    """Sign and send one pipeline event, e.g. `send run.finished --run-id R --data @summary.json`."""
    payload = _read_data(data)
    if run_id is not None:
        payload["run_id"] = run_id
    elif "run_id" not in payload:
        raise click.UsageError("give --run-id, or a run_id in --data")
    if not (secret or os.environ.get("PIPELINE_WEBHOOK_SECRET")):
        raise click.ClickException("no signing secret: pass --secret or set PIPELINE_WEBHOOK_SECRET")
    try:
        answer = send_event(event_type, payload, url=url, secret=secret)
    except SendError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(answer))
