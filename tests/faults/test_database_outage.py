"""PostgreSQL stops in the middle of a load: 503 until it is back, then nothing is missing.

The test stops and starts a private cluster of its own: the shared one on 5432 serves
other tests meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import requests
from flask.testing import FlaskClient

import store
from ingest.worker import Worker
from store import inbox
from store.database import DatabaseUnavailable
from tests.faults.load import Senders, pipeline_events
from tests.faults.services import PrivatePostgres, event_worker, private_postgres, web_server
from tests.webhooks import pipeline_event, post_pipeline


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as cluster:
        engine = store.configure(cluster.url)
        yield cluster
        engine.dispose()


def readiness(url: str) -> int:
    return requests.get(f"{url}/readyz", timeout=10).status_code


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; the caller asserts the outcome."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.slow
def test_an_outage_is_answered_503_and_every_retried_event_lands_once_it_ends(
    cluster: PrivatePostgres, tmp_path: Path
) -> None:
    events = pipeline_events(runs=150, seed=34)
    sent = dict(events)
    with (
        web_server(cluster.url, tmp_path) as server,
        event_worker(cluster.url, tmp_path) as worker,
        # Senders that retry every 50 ms until acknowledged, as a patient webhook sender does.
        Senders(server.url, events, threads=3, retry_pause=0.05, pace=0.02) as senders,
    ):
        web_workers = server.worker_pids()
        senders.wait_for(len(events) // 5)
        cluster.stop()
        down = time.monotonic()
        ready_during = []
        while time.monotonic() < down + 1.5:
            ready_during.append(readiness(server.url))
            time.sleep(0.1)
        up = time.monotonic()
        cluster.start()
        attempts = senders.finish()
        wait_until(lambda: readiness(server.url) == 200, 30)
        assert readiness(server.url) == 200
        # Nothing was restarted: the same web workers and event worker serve on.
        assert server.worker_pids() == web_workers
        assert worker.poll() is None
        wait_until(lambda: inbox.counts() == {("pipeline", "done"): len(events)}, 60)
        assert inbox.counts() == {("pipeline", "done"): len(events)}

    assert set(ready_during) == {503}
    during = [a for a in attempts if a.sent_at > down and a.answered_at < up]
    assert during, "no delivery was attempted during the outage"
    assert {a.status for a in during} == {503}
    # 200: a retry of a delivery stored just as the database stopped, too late to answer 202.
    assert {a.status for a in attempts} <= {200, 202, 503}
    stored = inbox.list_deliveries(limit=2 * len(events))
    assert sorted(d.dedupe_key for d in stored) == sorted(f"webhook:{webhook_id}" for webhook_id in sent)
    assert all(d.body == sent[d.dedupe_key.removeprefix("webhook:")] for d in stored)


def test_events_claimed_when_the_database_went_away_are_handed_back_once_it_answers(
    client: FlaskClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for run_id in ("a", "b", "c"):
        assert post_pipeline(client, pipeline_event("run.started", run_id)).status_code == 202

    def unavailable(*_: object, **__: object) -> NoReturn:
        raise DatabaseUnavailable("connection refused")

    with monkeypatch.context() as outage:
        outage.setattr("ingest.worker.apply", unavailable)
        outage.setattr(inbox, "retry_later", unavailable)
        with pytest.raises(DatabaseUnavailable):
            worker.run_once()
    assert inbox.counts() == {("pipeline", "processing"): 3}

    assert worker.run_once() == 3
    assert inbox.counts() == {("pipeline", "done"): 3}
