"""Running runs through the real app: start one and report progress, as the pipeline does."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from ingest.worker import Worker
from tests.webhooks import post_pipeline


def start_run(client: FlaskClient, worker: Worker, run_id: str, method: str = "mgda") -> None:
    """Launch and start a run, and have the worker apply both events."""
    launched = {
        "type": "run.launched",
        "timestamp": "2026-11-20T10:00:00Z",
        "data": {
            "run_id": run_id,
            "config": {
                "run_name": f"{run_id} sweep",
                "training": {"gradient_method": method, "batch_size": 64},
            },
        },
    }
    started = {"type": "run.started", "timestamp": "2026-11-20T10:01:00Z", "data": {"run_id": run_id}}
    for body in (launched, started):
        assert post_pipeline(client, body).status_code == 202
    worker.run_once()


def report(client: FlaskClient, run_id: str, step: int, metrics: dict[str, Any]) -> None:
    """Post one run.progress event (the worker applies it when it next runs)."""
    body = {
        "type": "run.progress",
        "timestamp": "2026-11-20T10:30:00Z",
        "data": {"run_id": run_id, "step": step, "metrics": metrics},
    }
    response = post_pipeline(client, body)
    assert response.status_code == 202, response.get_data(as_text=True)
