"""An event worker SIGKILLed in the middle of a slow batch: another takes its events over within 30 s.

The batch is slow because a W&B sync in it waits on a W&B API that does not answer. The worker
renews its claim on the batch's events while it runs; once it is dead the claim runs out after
WORKER_LEASE (20 s), and a second worker claims the events and applies them.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import store
from ingest import create_app
from ingest.settings import Settings
from store import inbox
from tests.conftest import PIPELINE_SECRET, WANDB_TOKEN
from tests.fake_wandb import FakeWandb
from tests.faults.load import pipeline_events
from tests.faults.services import PrivatePostgres, event_worker, private_postgres
from tests.webhooks import pipeline_headers, post_wandb

ENTITY, PROJECTS = "mango-lab", ("alpha", "beta", "gamma")
API_KEY = "wandb-api-key"
TAKEOVER_SECONDS = 30


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as cluster:
        engine = store.configure(cluster.url)
        yield cluster
        engine.dispose()


def wait_until(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_workers_batch_is_taken_over_within_30_seconds_and_applied_once(
    cluster: PrivatePostgres, tmp_path: Path
) -> None:
    client = create_app(
        Settings(
            database_url=cluster.url, pipeline_webhook_secret=PIPELINE_SECRET, wandb_webhook_token=WANDB_TOKEN
        )
    ).test_client()
    events = pipeline_events(runs=10, seed=18)
    for webhook_id, body in events:
        assert (
            client.post(
                "/webhooks/pipeline", data=body, headers=pipeline_headers(body, webhook_id)
            ).status_code
            == 202
        )
    for project in PROJECTS:
        body = {"source": "wandb", "event_type": "RUN_STATE", "entity_name": ENTITY, "project_name": project}
        assert post_wandb(client, json.dumps(body), secret=None).status_code == 202

    with FakeWandb(api_key=API_KEY) as fake:
        for project in PROJECTS:
            fake.add_run(ENTITY, project, f"{project}-run", config={}, state="finished")
        fake.hold_next()
        wandb = {"WANDB_BASE_URL": fake.url, "WANDB_API_KEY": API_KEY}
        with event_worker(cluster.url, tmp_path, name="doomed", **wandb) as doomed:
            # The first sync of the batch waits on W&B: the worker is in the middle of its batch.
            assert fake.holding.wait(30)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            killed_at = time.monotonic()
        left = {d.id for d in inbox.list_deliveries("processing", limit=100)}
        with event_worker(cluster.url, tmp_path, name="survivor", **wandb):
            wait_until(lambda: not inbox.list_deliveries("processing", limit=1), TAKEOVER_SECONDS + 10)
            taken_over_after = time.monotonic() - killed_at
            wait_until(lambda: inbox.counts().get(("wandb", "done")) == len(PROJECTS), 10)
        synced = Counter(request["variables"]["project"] for request in fake.requests)

    assert taken_over_after < TAKEOVER_SECONDS
    deliveries = inbox.list_deliveries(limit=100)
    assert Counter(d.status for d in deliveries) == {"done": len(events) + len(PROJECTS)}
    # The batch's events applied with the pipeline's before the killing were not applied again;
    # the W&B ones it still held were claimed once more, and each project synced once.
    assert {d.id for d in deliveries if d.attempts == 2} == left
    assert {d.source for d in deliveries if d.id in left} == {"wandb"}
    assert synced == dict.fromkeys(PROJECTS, 1)
    assert all(store.get_run(f"{project}-run")["status"] == "completed" for project in PROJECTS)
    assert store.get_stats()["runs_by_status"] == {"completed": 10 + len(PROJECTS)}
