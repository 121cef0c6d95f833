"""The same events delivered one to three times each, in any order, end in the same rows.

Senders retry, SNS and EventBridge deliver at least once, and nothing orders deliveries
across runs, sources or workers: the rows must depend on the set of events only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from werkzeug.test import TestResponse

import store
from ingest.settings import Settings
from ingest.worker import Worker
from store import inbox
from store.models import Base
from testkit.factory import CRASH_BUCKET, generate_runs
from tests.sns_signer import SnsSigner
from tests.webhooks import pipeline_event, post_pipeline, post_s3, post_sns, sns_notification

# Stamped with the time a row changed, not with anything the events carry.
WALL_CLOCK = ("updated_at", "completed_at")


@dataclass(frozen=True)
class Event:
    """One event and how its sender posts it; posting it again is a redelivery."""

    name: str
    post: Callable[[FlaskClient], TestResponse]


def pipeline(name: str, event_type: str, run_id: str, minute: int, **data: Any) -> Event:
    body = json.dumps(pipeline_event(event_type, run_id, f"2026-11-20T10:{minute:02d}:00Z", **data))
    return Event(name, lambda client: post_pipeline(client, body, webhook_id=name))


def s3_record(key: str, sequencer: str, etag: str) -> dict[str, Any]:
    obj = {"key": key, "size": 512, "eTag": etag, "sequencer": sequencer}
    return {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": CRASH_BUCKET}, "object": obj}}


def eventbridge(event_id: str, key: str, sequencer: str, etag: str) -> Event:
    body = {
        "version": "0",
        "id": event_id,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": CRASH_BUCKET},
            "object": {"key": key, "size": 512, "etag": etag, "sequencer": sequencer},
        },
    }
    return Event(event_id, lambda client: post_s3(client, body))


def run_events(signer: SnsSigner) -> tuple[list[str], list[Event]]:
    """Return the run ids and, in the order the pipeline sends them, the events of four runs."""
    records = list(generate_runs(4, seed=5))
    endings = ["run.finished", "run.failed", "run.crashed", "run.killed"]
    events: list[Event] = []
    for index, (record, ending) in enumerate(zip(records, endings, strict=True)):
        run_id, wandb_run_id = record["run_id"], record["wandb_run_id"]
        summary = record["summary"] or {"_step": 0}
        events += [
            pipeline(f"{run_id}-launched", "run.launched", run_id, 0, config=record["config"],
                     wandb_run_id=wandb_run_id, wandb_entity=record["entity"],
                     wandb_project=record["project"], chain_of_custody_id=record["chain_of_custody_id"]),
            pipeline(f"{run_id}-started", "run.started", run_id, 1, wandb_run_id=wandb_run_id),
            pipeline(f"{run_id}-step-100", "run.progress", run_id, 2, step=100, metrics={"train/loss": 2.5}),
            # Two reports of one step: merged whatever their order.
            pipeline(f"{run_id}-step-200", "run.progress", run_id, 3, step=200, metrics={"train/loss": 1.5}),
            pipeline(f"{run_id}-step-200-eval", "run.progress", run_id, 3, step=200, metrics={"eval/loss": 1.7}),
        ]  # fmt: skip
        if ending == "run.crashed":
            prefix = f"crash-reports/{run_id}"
            error_log = f"{prefix}/error.log"
            records_event = {"Records": [s3_record(f"{prefix}/report.md", "0B1", "r1")]}
            notification = sns_notification(signer, records_event, message_id=f"sns-{run_id}")
            events += [
                pipeline(f"{run_id}-crashed", ending, run_id, 4, error="CUDA error: out of memory",
                         error_log_s3_key=error_log),
                # The error log written twice: S3's sequencer, not arrival, decides which is current.
                eventbridge(f"eb-{run_id}-1", error_log, "0A1", "e1"),
                eventbridge(f"eb-{run_id}-2", error_log, "0A2", "e2"),
                Event(f"sns-{run_id}", lambda client, envelope=notification: post_sns(client, envelope)),
                Event(f"s3-{run_id}", lambda client, key=f"{prefix}/analysis.md": post_s3(
                    client, {"Records": [s3_record(key, "0C1", "a1")]})),
            ]  # fmt: skip
        else:
            events.append(pipeline(f"{run_id}-{ending}", ending, run_id, 4, summary=summary))
        if index < 2:
            events.append(
                pipeline(f"{run_id}-attachment", "run.attachment", run_id, 5,
                         conversation_s3_key=f"conversations/{run_id}.json",
                         blog_url=f"https://blog.example.com/{run_id}")
            )  # fmt: skip
    return [r["run_id"] for r in records], events


def empty_database() -> None:
    with store.get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def rows(run_ids: list[str]) -> dict[str, Any]:
    """Return what get_run, get_run_objectives and get_run_history give for each run, wall-clock
    stamps aside."""
    result = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None
        for stamp in WALL_CLOCK:
            run.pop(stamp)
        result[run_id] = {
            "run": run,
            "objectives": store.get_run_objectives(run_id),
            "history": store.get_run_history(run_id),
        }
    # Through JSON, so that NaN equals NaN and datetimes compare as written.
    return json.loads(json.dumps(result, sort_keys=True, default=str), parse_constant=str)


def test_redelivered_and_reordered_events_end_in_the_rows_of_one_ordered_delivery(
    client: FlaskClient, settings: Settings, sns_signer: SnsSigner
) -> None:
    run_ids, events = run_events(sns_signer)
    # A small batch lets processing interleave with delivery in more ways.
    worker = Worker(settings.model_copy(update={"worker_batch_size": 3}))
    for event in events:
        assert event.post(client).status_code == 202, event.name
    drain(worker)
    expected = rows(run_ids)
    assert {status for _, status in inbox.counts()} == {"done"}

    @given(st.data())
    @examples(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(data: st.DataObject) -> None:
        empty_database()
        copies = data.draw(st.lists(st.integers(1, 3), min_size=len(events), max_size=len(events)))
        deliveries = data.draw(
            st.permutations([event for event, n in zip(events, copies, strict=True) for _ in range(n)])
        )
        process_after = data.draw(st.lists(st.booleans(), min_size=len(deliveries), max_size=len(deliveries)))
        for event, process in zip(deliveries, process_after, strict=True):
            assert event.post(client).status_code in (200, 202), event.name
            if process:
                worker.run_once()
        drain(worker)
        assert rows(run_ids) == expected
        assert inbox.counts() == {(source, "done"): n for (source, _), n in inbox.counts().items()}

    check()
