"""The worker: claiming, retries with backoff, dead events, several workers, and waking on new events."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import store
from handlers import HANDLERS, Outcome
from handlers.events import EventKind
from ingest.cli import main
from ingest.worker import BATCH_ATTEMPTS, Worker
from store import extract, inbox
from tests.fake_wandb import FakeWandb
from tests.inbox import backdate, fill
from tests.webhooks import fixture, pipeline_event, post_pipeline, post_s3, post_wandb

BIN = Path(sys.executable).parent


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


def _runs_and_steps(deliveries: list[inbox.Delivery]) -> list[tuple[str, int]]:
    return [
        (body["data"]["run_id"], body["data"]["step"]) for body in (json.loads(d.body) for d in deliveries)
    ]


def test_a_claim_passes_over_the_events_of_a_run_another_worker_is_applying(client):
    for run_id, step in [("r1", 1), ("r1", 2), ("r2", 1), ("r1", 3), ("r2", 2)]:
        post_pipeline(client, pipeline_event("run.progress", run_id, step=step))
    post_s3(client, fixture("s3", "eventbridge__object_created"))

    first = inbox.claim(1)
    second = inbox.claim(10)

    assert _runs_and_steps(first) == [("r1", 1)]
    # Run r2's events, and the crash report (which names no run as it arrives), but none of r1's:
    # their worker would only wait for r1's lock, held by the first claim's until it commits.
    assert _runs_and_steps([d for d in second if d.source == "pipeline"]) == [("r2", 1), ("r2", 2)]
    assert [d.source for d in second] == ["pipeline", "pipeline", "s3"]
    inbox.finish([d.id for d in first], "done")
    assert _runs_and_steps(inbox.claim(10)) == [("r1", 2), ("r1", 3)]


def test_the_events_of_a_run_whose_worker_died_are_claimed_after_its_lease(client):
    for step in (1, 2):
        post_pipeline(client, pipeline_event("run.progress", "r1", step=step))
    inbox.claim(1)

    assert inbox.claim(10) == []
    assert _runs_and_steps(inbox.claim(10, lease=timedelta(seconds=-1))) == [("r1", 1), ("r1", 2)]


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
        post_pipeline(client, pipeline_event("run.progress", f"r{step}", step=step))
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


def test_without_an_archive_a_worker_says_once_that_the_inbox_is_unbounded(settings, caplog):
    stopped = threading.Event()
    stopped.set()

    Worker(settings).run(stopped)
    Worker(settings.model_copy(update={"inbox_archive": "archive"})).run(stopped)

    assert caplog.text.count("inbox.unbounded: INBOX_ARCHIVE is unset") == 1


def test_a_running_worker_archives_old_processed_deliveries_in_batches_and_keeps_processing(
    client, settings, tmp_path
):
    worker = Worker(settings.model_copy(update={"inbox_archive": str(tmp_path)}))
    worker.archiver.batch_size = 2
    by_status = fill(client, worker)
    backdate([i for ids in by_status.values() for i in ids], days=31)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        post_pipeline(client, fixture("pipeline", "run_started__basic"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            len(list(tmp_path.glob("*.jsonl.gz"))) < 2 or inbox.list_deliveries("pending")
        ):
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert len(list(tmp_path.glob("inbox-*.jsonl.gz"))) == 2
    # The failed event was retried meanwhile, and refused: its body is no event.
    assert sorted((d.status, d.kind) for d in inbox.list_deliveries()) == [
        ("dead", "run.started"),
        ("done", "run.started"),
        ("invalid", "invalid"),
        ("invalid", "run.started"),
    ]


# --- values a typed column cannot hold, and failures that would repeat ---------------------------

SEED = 12345678901234567890  # torch.initial_seed() returns 64 unsigned bits: past a signed bigint


def _body(event_type: str, run_id: str, fields: str) -> bytes:
    """An event body written by hand, so that numbers reach the app as the JSON text says them."""
    head = f'{{"type": "{event_type}", "timestamp": "2026-11-20T10:00:00Z", "data": {{"run_id": "{run_id}", '
    return (head + fields + "}}").encode()


def _launch(run_id: str, config: str, objectives: str = "") -> bytes:
    return _body("run.launched", run_id, '"config": {' + config + objectives + "}")


def _finish(run_id: str, summary: str) -> bytes:
    return _body("run.finished", run_id, '"summary": {' + summary + "}")


def _progress(run_id: str, step: str) -> bytes:
    return _body("run.progress", run_id, f'"step": {step}, "metrics": {{"train/loss": 0.5}}')


def _objective(weight: str) -> str:
    return ', "objectives": [{"name": "COMT_activity", "alias": "comt", "weight": ' + weight + "}]"


@pytest.mark.parametrize(
    ("bodies", "field", "where", "kept"),
    [
        (
            [_launch("r1", f'"training": {{"seed": {SEED}}}')],
            "seed",
            "64-bit",
            ("config_json", ["training", "seed"], SEED),
        ),
        (
            [_launch("r1", '"training": {"batch_size": 2147483648}')],
            "batch_size",
            "32-bit",
            ("config_json", ["training", "batch_size"], 2**31),
        ),
        (
            [_launch("r1", '"max_steps": 1e20')],
            "max_steps",
            "64-bit",
            ("config_json", ["max_steps"], 1e20),
        ),
        (
            [_launch("r1", '"learning_rate": 1e400')],
            "learning_rate",
            "not a finite number",
            ("config_json", ["learning_rate"], float("inf")),
        ),
        (
            [_launch("r1", '"lr": 0.1', _objective("1e400"))],
            "objectives.COMT_activity.weight",
            "not a finite number",
            ("config_json", ["objectives", 0, "weight"], float("inf")),
        ),
        (
            [_finish("r1", '"_step": 9223372036854775808, "objectives/comt/raw_mean": 1e400')],
            "total_training_steps",
            "64-bit",
            ("final_metrics_json", ["_step"], 2**63),
        ),
        (
            [_finish("r1", '"_step": 5, "objectives/comt/raw_mean": 1e400')],
            "objectives.comt.raw_mean",
            "not a finite number",
            ("final_metrics_json", ["objectives/comt/raw_mean"], float("inf")),
        ),
        (
            [_progress("r1", "9223372036854775808")],
            "last_step",
            "64-bit",
            ("progress_json", ["train/loss"], 0.5),
        ),
        (
            [_launch("r1", '"training": {"gradient_method": "%s"}' % ("m" * 200))],
            "gradient_method",
            "longer than 128",
            ("config_json", ["training", "gradient_method"], "m" * 200),
        ),
    ],
    ids=["seed", "batch_size", "max_steps", "learning_rate", "weight", "_step", "raw_mean", "step", "long"],
)
def test_a_value_its_typed_column_cannot_hold_is_applied_kept_in_the_json_and_warned_of(
    client, worker, bodies, field, where, kept
):
    ids = [post_pipeline(client, body).json["event_id"] for body in bodies]

    worker.run_once()

    delivery = inbox.get_delivery(ids[-1])
    assert delivery.status == "done", delivery.last_error
    (warning,) = [w for w in delivery.warnings if w.startswith(f"run r1: {field}: ")]
    assert where in warning
    run = store.get_run("r1")
    assert where in run["warnings"][field]
    column = field.rsplit(".", 1)[-1]
    if field.startswith("objectives."):
        assert {o["objective_name"]: o[column] for o in run["objectives"]}[field.split(".")[1]] is None
    else:
        assert run[column] is None
    document, path, value = kept
    node = run[document]
    for part in path:
        node = node[part]
    assert node == value and type(node) is type(value)


def test_the_issues_big_seed_launch_and_finish_make_a_completed_run_with_its_config(client, worker):
    post_pipeline(client, _launch("big-seed", f'"training": {{"seed": {SEED}, "batch_size": 64}}'))
    post_pipeline(client, _finish("big-seed", '"_step": 10, "train/loss": 0.25'))

    worker.run_once()

    run = store.get_run("big-seed")
    assert (run["status"], run["seed"], run["batch_size"], run["final_loss"]) == ("completed", None, 64, 0.25)
    assert run["config_json"] == {"training": {"seed": SEED, "batch_size": 64}}
    assert inbox.counts() == {("pipeline", "done"): 2}


def test_a_value_that_fits_again_clears_the_runs_warning(client, worker):
    post_pipeline(client, _launch("r1", f'"seed": {SEED}'))
    worker.run_once()
    event_id = post_pipeline(client, _launch("r1", '"seed": 7')).json["event_id"]

    worker.run_once()

    assert (store.get_run("r1")["seed"], store.get_run("r1")["warnings"]) == (7, None)
    assert inbox.get_delivery(event_id).warnings is None


def test_a_completed_run_whose_summary_has_no_objective_values_is_warned_of(client, worker):
    post_pipeline(client, _launch("r1", '"lr": 0.1', _objective("1.0")))
    event_id = post_pipeline(client, _finish("r1", '"_step": 5, "COMT_activity": 0.9')).json["event_id"]

    worker.run_once()

    expected = "the summary has no objectives/<alias>/<stat> key for comt: their values are empty"
    assert inbox.get_delivery(event_id).warnings == [f"run r1: objectives.values: {expected}"]
    assert store.get_run("r1")["warnings"] == {"objectives.values": expected}


def test_a_summary_with_objective_values_has_no_warning(client, worker):
    post_pipeline(client, _launch("r1", '"lr": 0.1', _objective("1.0")))
    event_id = post_pipeline(client, _finish("r1", '"_step": 5, "objectives/comt/raw_mean": 0.9')).json[
        "event_id"
    ]

    worker.run_once()

    assert inbox.get_delivery(event_id).warnings is None
    assert store.get_run("r1")["warnings"] is None
    assert store.get_run("r1")["objectives"][0]["raw_mean"] == 0.9


def test_a_failure_that_would_repeat_is_dead_at_once_with_its_error(client, worker, monkeypatch):
    from sqlalchemy.exc import DataError

    refused = DataError("INSERT ...", {}, Exception('value "1" is out of range for type integer'))
    calls = _break_handler(monkeypatch, EventKind.RUN_LAUNCHED, refused)
    event_id = post_pipeline(client, fixture("pipeline", "run_launched__basic")).json["event_id"]
    other = post_pipeline(client, pipeline_event("run.started", "r2")).json["event_id"]

    worker.run_once()

    dead = inbox.get_delivery(event_id)
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "DataError" in dead.last_error and "out of range for type integer" in dead.last_error
    assert inbox.get_delivery(other).status == "done"
    # Once in the batch, once alone: a failure in a batch may be another event's, written late.
    assert len(calls) == 2


def test_a_unique_violation_may_be_a_race_and_is_retried(client, worker, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    _break_handler(monkeypatch, EventKind.RUN_LAUNCHED, IntegrityError("INSERT ...", {}, Exception("dup")))
    event_id = post_pipeline(client, fixture("pipeline", "run_launched__basic")).json["event_id"]

    worker.run_once()

    assert inbox.get_delivery(event_id).status == "failed"


def test_a_value_the_database_refuses_is_dead_at_once_and_replayed_after_the_fix(client, worker, monkeypatch):
    # The worker as it was: the seed goes to its column unchecked, and the database refuses it.
    paths, _ = extract.CONFIG_COLUMNS["seed"]
    with monkeypatch.context() as before_the_fix:
        before_the_fix.setitem(extract.CONFIG_COLUMNS, "seed", (paths, extract.as_int))
        event_id = post_pipeline(client, _launch("big-seed", f'"seed": {SEED}')).json["event_id"]
        worker.run_once()
    dead = inbox.get_delivery(event_id)
    assert (dead.status, dead.attempts) == ("dead", 1), dead.last_error
    assert store.get_run("big-seed") is None

    result = CliRunner().invoke(main, ["replay", "inbox"])

    assert result.exit_code == 0, result.output
    assert "seen 1: applied 1" in result.output
    replayed = inbox.get_delivery(event_id)
    assert (replayed.status, replayed.last_error) == ("done", None)
    assert replayed.warnings and "seed" in replayed.warnings[0]
    assert store.get_run("big-seed")["config_json"] == {"seed": SEED}


def test_a_worker_loads_rdkit_as_it_starts_not_in_its_first_batch_of_molecules(tmp_path):
    # In a fresh process: this one loaded RDKit long ago.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'training.db'}"}
    subprocess.run([BIN / "training-db", "migrate"], env=env, check=True, capture_output=True, timeout=60)
    starting = """
import sys, threading
import store
from ingest.settings import Settings
from ingest.worker import Worker

settings = Settings()
store.configure(settings.database_url)
stop = threading.Event()
claim = store.claim_deliveries

def claiming(*args):
    print("rdkit loaded at the first claim:", "rdkit" in sys.modules)
    stop.set()
    return claim(*args)

store.claim_deliveries = claiming
print("rdkit loaded before starting:", "rdkit" in sys.modules)
Worker(settings).run(stop)
"""
    started = subprocess.run(
        [sys.executable, "-c", starting], env=env, capture_output=True, text=True, timeout=120, check=True
    )

    assert started.stdout.splitlines() == [
        "rdkit loaded before starting: False",
        "rdkit loaded at the first claim: True",
    ]


def test_the_cyclic_collector_waits_while_a_batch_is_applied_and_runs_again_after(
    client, worker, monkeypatch
):
    collecting = []
    run_launched = HANDLERS[EventKind.RUN_LAUNCHED]

    def recording(event, context) -> Outcome:
        collecting.append(gc.isenabled())
        return run_launched(event, context)

    monkeypatch.setitem(HANDLERS, EventKind.RUN_LAUNCHED, recording)
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    worker.run_once()
    broken = _break_handler(monkeypatch, EventKind.RUN_LAUNCHED, RuntimeError("boom"))
    post_pipeline(client, pipeline_event("run.launched", "run-2", config={}))
    worker.run_once()

    assert collecting == [False]
    assert broken == [1]
    assert gc.isenabled()
