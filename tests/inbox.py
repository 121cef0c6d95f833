"""An inbox of every kind of outcome, through the real app and worker, and aging it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

import store
from ingest.worker import Worker
from store import inbox
from store.models import InboxEvent
from tests.webhooks import fixture, post_pipeline, post_s3

KEPT = ("failed", "dead", "invalid")


def backdate(event_ids: Iterable[int], days: float) -> None:
    """Make deliveries look received ``days`` ago."""
    with store.get_engine().begin() as connection:
        connection.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(list(event_ids)))
            .values(received_at=store.utcnow() - timedelta(days=days))
        )


def fill(client: FlaskClient, worker: Worker, run_id: str = "run-000-0000042") -> dict[str, list[int]]:
    """Deliver one run's events, an ignored S3 test event and an invalid event; store a failed and a dead one.

    Returns the ids by status, oldest first, once the worker has processed everything.
    """
    for name, webhook_id in (
        ("run_launched__basic", "launched"),
        ("run_progress__step_500", "progress"),
        ("run_finished__with_summary", "finished"),
    ):
        body = fixture("pipeline", name).replace(b"run-000-0000042", run_id.encode())
        assert post_pipeline(client, body, webhook_id=f"msg_{run_id}_{webhook_id}").status_code == 202
    assert post_s3(client, fixture("s3", "test_event")).status_code in (200, 202)
    assert post_pipeline(client, {"type": "run.launched", "data": {}}).status_code == 422
    while worker.run_once():
        pass
    # After the worker: it would have claimed the failed one.
    for status in ("failed", "dead"):
        inbox.record_delivery(
            "pipeline", "run.started", f"test:{run_id}:{status}", b"{}", {}, status=status, last_error="boom"
        )
    by_status: dict[str, list[int]] = {}
    for delivery in reversed(inbox.list_deliveries(limit=1000)):
        by_status.setdefault(delivery.status, []).append(delivery.id)
    return by_status
