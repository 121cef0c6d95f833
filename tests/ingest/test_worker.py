"""The worker: claiming, retries with backoff, dead events, several workers, and waking on new events."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

import store
from handlers import HANDLERS, Outcome
from ingest.events import EventKind
from ingest.worker import BATCH_ATTEMPTS, Worker
from store import inbox
from tests.fake_wandb import FakeWandb
from tests.webhooks import fixture, pipeline_event, post_pipeline, post_wandb


def _break_handler(monkeypatch, kind: EventKind, error: Exception) -> list[int]:
    calls: list[int] = []

    def broken(event, context) -> Outcome:
        calls.append(1)
        raise error

    monkeypatch.setitem(HANDLERS, kind, broken)
    return calls


def _make_due(event_id: int) -> None:
    from sqlalchemy import update

    from store.models import InboxEvent

    with store.get_engine().begin() as connection:
        connection.execute(
            update(InboxEvent).where(InboxEvent.id == event_id).values(next_attempt_at=store.utcnow())
        )


def test_a_failing_handler_is_retried_with_backoff_then_marked_dead_with_its_last_error(
    client, settings, monkeypatch
):
    calls = _break_handler(monkeypatch, EventKind.RUN_LAUNCHED, RuntimeError("boom"))
    worker = Worker(settings.model_copy(update={"worker_max_attempts": 3}))
    event_id = post_pipeline(client, fixture("pipeline", "run_launched__basic")).json["event_id"]

    worker.run_once()
    failed = inbox.get_delivery(event_id)
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "RuntimeError: boom")
    for _ in range(2):
        _make_due(event_id)
        worker.run_once()

    dead = inbox.get_delivery(event_id)
    assert (dead.status, dead.attempts, len(calls)) == ("dead", 3, 3)
    assert dead.last_error == "RuntimeError: boom"


def test_a_failed_event_is_not_retried_before_its_backoff(client, worker, monkeypatch):
    _break_handler(monkeypatch, EventKind.RUN_LAUNCHED, RuntimeError("boom"))
    event_id = post_pipeline(client, fixture("pipeline", "run_launched__basic")).json["event_id"]
    monkeypatch.setattr("random.uniform", lambda low, high: high)

    worker.run_once()

    assert worker.run_once() == 0
    assert inbox.get_delivery(event_id).status == "failed"


def test_data_the_store_refuses_is_kept_as_invalid_without_retries(client, worker):
    response = post_pipeline(client, pipeline_event("run.finished", "r1", status="exploded"))

    worker.run_once()

    delivery = inbox.get_delivery(response.json["event_id"])
    assert (delivery.status, delivery.attempts) == ("invalid", 1)
    assert "unknown status 'exploded'" in delivery.last_error


def test_an_event_claimed_by_a_worker_that_died_is_claimed_again_after_the_lease(client, worker):
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    (claimed,) = inbox.claim(10)

    assert inbox.claim(10) == []
    again = inbox.claim(10, lease=timedelta(seconds=-1))

    assert [d.id for d in again] == [claimed.id]
    assert again[0].attempts == 2


def test_a_live_worker_keeps_its_slow_events_past_the_lease(client, settings):
    with FakeWandb(api_key="wandb-api-key") as fake:
        fake.add_run("mango-lab", "mango-moo", "slow0001", config={}, state="finished")
        fake.hold_next()
        short = settings.model_copy(
            update={"wandb_base_url": fake.url, "wandb_api_key": "wandb-api-key", "worker_lease": 1.0}
        )
        event_id = post_wandb(client, fixture("wandb", "run_state__finished")).json["event_id"]
        stop = threading.Event()
        slow, other = Worker(short), Worker(short)
        running = threading.Thread(target=slow.run, args=(stop,))
        running.start()
        try:
            assert fake.holding.wait(10)
            # Three leases: without renewals the other worker would take the event over.
            deadline = time.monotonic() + 3 * short.worker_lease
            while time.monotonic() < deadline:
                assert other.run_once() == 0
                time.sleep(0.1)
            fake.release()
            while inbox.get_delivery(event_id).status == "processing" and time.monotonic() < deadline + 10:
                time.sleep(0.05)
        finally:
            stop.set()
            running.join(timeout=10)

    delivery = inbox.get_delivery(event_id)
    assert (delivery.status, delivery.attempts) == ("done", 1)
    assert store.get_run("slow0001")["status"] == "completed"


def test_two_workers_never_claim_the_same_event(client):
    for step in range(40):
        post_pipeline(client, pipeline_event("run.progress", "r1", step=step))
    claimed: list[int] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := inbox.claim(3):
            with lock:
                claimed.extend(d.id for d in batch)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 40


def test_a_running_worker_wakes_on_a_new_event_and_makes_the_run_queryable(client, settings):
    stop = threading.Event()
    worker = threading.Thread(target=Worker(settings).run, args=(stop,))
    worker.start()
    try:
        time.sleep(0.3)
        post_pipeline(client, fixture("pipeline", "run_launched__basic"))
        deadline = time.monotonic() + 10
        while store.get_run("run-000-0000042") is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=10)

    assert store.get_run("run-000-0000042") is not None
    assert not worker.is_alive()


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_the_final_run_does_not_depend_on_the_order_events_arrive_in(client, worker, order):
    events = [
        fixture("pipeline", "run_launched__basic"),
        fixture("pipeline", "run_started__basic"),
        fixture("pipeline", "run_crashed__with_keys"),
        fixture("pipeline", "run_finished__with_summary"),
    ]
    for index in order:
        post_pipeline(client, events[index])
    worker.run_once()

    run = store.get_run("run-000-0000042")
    assert (run["status"], run["batch_size"], run["final_loss"], run["error_log_s3_key"]) == (
        "completed",
        64,
        0.4231,
        "crash-reports/run-000-0000042/error.log",
    )


def test_in_a_batch_a_failing_event_fails_alone_and_the_others_are_applied_once(client, worker, monkeypatch):
    calls = _break_handler(monkeypatch, EventKind.RUN_CRASHED, RuntimeError("boom"))
    ids = [
        post_pipeline(client, event).json["event_id"]
        for event in (
            pipeline_event("run.started", "r1"),
            pipeline_event("run.crashed", "r2", error="oom"),
            pipeline_event("run.finished", "r1", summary={"_step": 5}),
        )
    ]

    assert worker.run_once() == 3

    assert [inbox.get_delivery(i).status for i in ids] == ["done", "failed", "done"]
    assert len(calls) == 1
    assert store.get_run("r1")["status"] == "completed"
    assert store.get_run("r2") is None


def test_a_batch_that_cannot_commit_is_applied_one_event_at_a_time(client, worker, monkeypatch):
    ids = [post_pipeline(client, pipeline_event("run.started", f"r{n}")).json["event_id"] for n in range(3)]
    finish = inbox.finish
    failures = iter([RuntimeError("commit refused")])

    def finish_failing_once(*args, **kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return finish(*args, **kwargs)

    monkeypatch.setattr(inbox, "finish", finish_failing_once)
    assert worker.run_once() == 3

    assert [inbox.get_delivery(i).status for i in ids] == ["done"] * 3
    assert [store.get_run(f"r{n}")["status"] for n in range(3)] == ["running"] * 3


class StopAfterFirstWait:
    """A stop event that records how long the worker waited, and stops it after that."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return bool(self.waits)

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return True


def test_after_a_batch_that_was_not_full_the_worker_lingers_so_that_the_next_one_fills(client, settings):
    worker = Worker(settings.model_copy(update={"worker_batch_size": 10, "worker_linger": 0.25}))
    for run_id in ("r1", "r2"):
        post_pipeline(client, pipeline_event("run.started", run_id))
    stop = StopAfterFirstWait()

    worker.run(stop)

    assert stop.waits == [0.25]
    assert inbox.counts() == {("pipeline", "done"): 2}


def test_a_worker_warns_when_postgresql_runs_without_autovacuum(settings, caplog):
    from sqlalchemy import text

    engine = store.get_engine()
    with engine.connect() as connection:
        off = (
            engine.dialect.name == "postgresql"
            and connection.execute(text("SHOW autovacuum")).scalar() == "off"
        )
    stopped = threading.Event()
    stopped.set()

    Worker(settings).run(stopped)

    assert ("database.autovacuum_off" in caplog.text) is off


def test_a_handler_failing_on_many_events_does_not_have_the_batch_applied_over_and_over(
    client, worker, monkeypatch
):
    failing = _break_handler(monkeypatch, EventKind.RUN_STARTED, RuntimeError("boom"))
    launched = []
    launch = HANDLERS[EventKind.RUN_LAUNCHED]
    monkeypatch.setitem(HANDLERS, EventKind.RUN_LAUNCHED, lambda e, c: launched.append(1) or launch(e, c))
    post_pipeline(client, pipeline_event("run.launched", "r0", config={"lr": 0.1}))
    for n in range(8):
        post_pipeline(client, pipeline_event("run.started", f"r{n + 1}"))

    assert worker.run_once() == 9

    assert len(failing) == 8
    assert len(launched) <= BATCH_ATTEMPTS + 1
    assert inbox.counts() == {("pipeline", "done"): 1, ("pipeline", "failed"): 8}
    assert store.get_run("r0")["config_json"] == {"lr": 0.1}


def test_the_workers_outcomes_are_counted_in_the_metrics(client, settings, monkeypatch):
    worker = Worker(settings.model_copy(update={"worker_max_attempts": 2}))
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    worker.run_once()
    _break_handler(monkeypatch, EventKind.RUN_STARTED, RuntimeError("boom"))
    event_id = post_pipeline(client, fixture("pipeline", "run_started__basic")).json["event_id"]
    worker.run_once()
    _make_due(event_id)
    worker.run_once()

    text_format = client.get("/metrics").get_data(as_text=True)

    assert 'training_db_events_processed_total{kind="run.launched",outcome="applied"}' in text_format
    assert 'training_db_events_failed_total{kind="run.started"}' in text_format
    assert 'training_db_events_dead_total{kind="run.started"}' in text_format


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_worker_plans_its_statements_once_and_the_rest_of_the_store_as_before(settings):
    def plan_cache_mode() -> str:
        with store.get_engine().connect() as connection:
            return connection.exec_driver_sql("SHOW plan_cache_mode").scalar_one()

    assert plan_cache_mode() == "auto"

    Worker(settings)

    # Every connection, the ones already pooled included, and kept past a rollback.
    assert plan_cache_mode() == "force_generic_plan"
    with store.get_engine().connect() as first, store.get_engine().connect() as second:
        modes = [c.exec_driver_sql("SHOW plan_cache_mode").scalar_one() for c in (first, second)]
        first.rollback()
    assert modes == ["force_generic_plan"] * 2
    assert plan_cache_mode() == "force_generic_plan"
