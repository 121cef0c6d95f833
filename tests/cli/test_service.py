"""`training-db serve --with-worker`, as `make run` starts it: the web and a worker together."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from ingest.client import send_event
from tests.conftest import PIPELINE_SECRET
from tests.faults.services import BIN, free_port, running, service_env, wait_until_ready

PROCESSED = 'training_db_events_processed_total{kind="run.launched",outcome="applied"} 1.0'


def test_the_workers_counters_are_in_the_webs_metrics(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/training_runs.db"
    env = service_env(database_url)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([str(BIN / "training-db"), "migrate"], env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "training-db"), "serve", "--with-worker", "--bind", url.removeprefix("http://")]

    with running(command, env, tmp_path / "serve.log"):
        wait_until_ready(url)
        send_event("run.launched", {"run_id": "r1", "config": {}}, url=url, secret=PIPELINE_SECRET)
        deadline = time.monotonic() + 30
        metrics = ""
        while PROCESSED not in metrics and time.monotonic() < deadline:
            time.sleep(0.1)
            metrics = requests.get(f"{url}/metrics", timeout=5).text

    assert PROCESSED in metrics


def test_a_worker_batch_size_past_the_creation_locks_bound_stops_with_the_reason(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path}/runs.db", WORKER_BATCH_SIZE="1001")
    finished = subprocess.run(
        [str(BIN / "training-db"), "worker", "--once"], env=env, capture_output=True, text=True
    )

    assert finished.returncode == 1
    assert (
        "bad configuration: WORKER_BATCH_SIZE: Input should be less than or equal to 1000" in finished.stderr
    )
