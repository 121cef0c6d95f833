"""Several store calls in one transaction: the worker's batches."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DataError
from sqlalchemy.pool import NullPool

import store
import store.direct
import store.records
import store.runs
from store import extract
from store.database import DatabaseUnavailable
from tests.store.test_runs import CONFIG, SUMMARY

TIMESTAMPS = ("run_id", "created_at", "updated_at", "completed_at")


def calls(prefix: str) -> list[bool]:
    """Launch, finish, repeat and crash runs as events would, returning each call's answer."""
    return [
        store.update_run_status(f"{prefix}1", "completed", final_metrics_json=SUMMARY),
        store.insert_run(f"{prefix}1", wandb_run_id="w1", config_dict=CONFIG),
        store.insert_run(f"{prefix}1", wandb_run_id="w1", config_dict=CONFIG),
        store.record_progress(f"{prefix}2", 10, {"train/loss": 0.5}),
        store.mark_crashed(f"{prefix}2", error="CUDA out of memory"),
        store.attach_blog_post(f"{prefix}2", "https://blog.example/run"),
        store.mark_crashed(f"{prefix}2", error="CUDA out of memory"),
    ]


def without_timestamps(run: dict) -> dict:
    kept = {k: v for k, v in run.items() if k not in TIMESTAMPS}
    kept["objectives"] = [{k: v for k, v in o.items() if k != "run_id"} for o in run["objectives"]]
    return kept


def test_calls_in_a_unit_answer_and_end_exactly_as_they_would_one_by_one(db):
    alone = calls("alone-")
    with store.unit_of_work(["unit-1", "unit-2"]):
        together = calls("unit-")

    assert together == alone == [True, True, False, True, True, True, False]
    for n in ("1", "2"):
        assert without_timestamps(store.get_run(f"unit-{n}")) == without_timestamps(
            store.get_run(f"alone-{n}")
        )


def test_nothing_in_a_unit_is_kept_when_it_raises(db):
    store.insert_run("kept", config_dict=CONFIG)
    with pytest.raises(RuntimeError, match="handler broke"), store.unit_of_work(["kept", "new"]):
        store.update_run_status("kept", "completed", final_metrics_json=SUMMARY)
        store.insert_run("new", config_dict=CONFIG)
        raise RuntimeError("handler broke")

    assert store.get_run("new") is None
    assert store.get_run("kept")["status"] == "launched"


def test_a_unit_reads_its_own_writes_and_locks_runs_it_was_not_told_about(db):
    with store.unit_of_work():
        store.insert_run("r1", config_dict=CONFIG)
        assert store.get_run("r1")["gradient_method"] == "mgda"
        assert store.update_run_status("r1", "completed", final_metrics_json=SUMMARY)

    assert store.get_run("r1")["status"] == "completed"


def test_a_bad_run_id_named_up_front_is_refused_and_nothing_begins(db):
    with (
        pytest.raises(ValueError, match="run_id must be a non-empty string"),
        store.unit_of_work(["ok", " "]),
    ):
        pass
    assert store.get_run("ok") is None


def test_units_do_not_nest(db):
    with pytest.raises(RuntimeError, match="do not nest"), store.unit_of_work(), store.unit_of_work():
        pass


def test_a_unit_compares_documents_stored_before_it_and_writes_only_what_changed(db):
    store.insert_run("r1", config_dict=CONFIG)
    store.update_run_status("r1", "finished", final_metrics_json={"_step": 10, "loss": 1.0})
    before = store.get_run("r1")

    with store.unit_of_work(["r1"]):
        same_config = store.insert_run("r1", config_dict=CONFIG)
        fewer_steps = store.update_run_status("r1", "finished", final_metrics_json={"_step": 5, "loss": 9.0})
    unchanged = store.get_run("r1")
    with store.unit_of_work(["r1"]):
        more_steps = store.update_run_status("r1", "finished", final_metrics_json={"_step": 20, "loss": 0.5})

    assert (same_config, fewer_steps, more_steps) == (False, False, True)
    assert unchanged == before
    assert store.get_run("r1")["final_metrics_json"] == {"_step": 20, "loss": 0.5}
    assert store.get_run("r1")["config_json"] == CONFIG


def _unchecked(monkeypatch: pytest.MonkeyPatch, column: str) -> None:
    """Let values of any length through to ``column``, which the store checks no longer fit."""
    paths, _ = extract.CONFIG_COLUMNS[column]
    monkeypatch.setitem(extract.CONFIG_COLUMNS, column, (paths, lambda value: value))
    monkeypatch.setitem(store.runs._FIT, column, lambda value: value)


# On PostgreSQL the locking reads, the updates and the new rows (COPY) go to the driver beside
# SQLAlchemy (store/direct.py): their failures must reach callers as SQLAlchemy's always have.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_new_row_the_database_refuses_fails_the_call_and_keeps_nothing_of_it(db, monkeypatch):
    _unchecked(monkeypatch, "gradient_method")

    with pytest.raises(DataError, match="value too long"):
        store.insert_run("r1", config_dict={"gradient_method": "x" * 300})

    assert store.get_run("r1") is None
    assert store.insert_run("r1", config_dict=CONFIG)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_update_the_database_refuses_fails_the_call_and_keeps_nothing_of_it(db, monkeypatch):
    store.insert_run("r1", config_dict=CONFIG)
    _unchecked(monkeypatch, "wandb_entity")

    with pytest.raises(DataError, match="value too long"):
        store.insert_run("r1", wandb_entity="x" * 300)

    assert store.get_run("r1")["wandb_entity"] is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("statement", "existing"),
    [
        ((store.direct.Direct, "execute"), False),  # the run locked for update
        ((store.direct.Direct, "execute_many"), True),  # the run's new values
        ((store.records, "_copy"), False),  # the new run and its objectives
    ],
    ids=["locking", "updating", "copying"],
)
def test_a_connection_lost_on_the_way_is_the_database_unavailable(db, monkeypatch, statement, existing):
    if existing:
        store.insert_run("r1")
    owner, name = statement
    original = getattr(owner, name)
    killer = create_engine(store.get_engine().url, poolclass=NullPool)

    def cut_first(*arguments):  # type: ignore[no-untyped-def]
        connection = next(a for a in arguments if isinstance(a, Connection))
        with killer.connect() as other:
            pid = connection.connection.dbapi_connection.info.backend_pid
            other.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
        return original(*arguments)

    monkeypatch.setattr(owner, name, cut_first)
    try:
        with pytest.raises(DatabaseUnavailable):
            store.insert_run("r1", config_dict=CONFIG)
    finally:
        monkeypatch.undo()
        killer.dispose()

    if existing:
        assert store.get_run("r1")["config_json"] is None
    else:
        assert store.get_run("r1") is None
    assert store.insert_run("r1", config_dict=CONFIG)


def _while_a_unit_creates_r1(work: Callable[[], object]) -> None:
    """Run ``work`` in another thread while a unit of work creates run r1; check that it waited
    for that unit and then succeeded."""
    finished = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
            finished.set()
        except BaseException as error:
            failures.append(error)

    with store.unit_of_work(["r1"]):
        store.insert_run("r1", config_dict=CONFIG)
        other = threading.Thread(target=run)
        other.start()
        assert not finished.wait(0.5)
    other.join(timeout=30)
    assert failures == []
    assert finished.is_set()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_run_created_by_another_transaction_meanwhile_is_locked_and_updated_not_lost(db):
    # The other call finds no run, and waits for the unit, which is creating it.
    _while_a_unit_creates_r1(lambda: store.update_run_status("r1", "completed", final_metrics_json=SUMMARY))

    run = store.get_run("r1")
    assert run["status"] == "completed"
    assert run["gradient_method"] == "mgda"
    assert run["final_metrics_json"] == SUMMARY


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_unit_waits_for_a_run_being_created_then_updates_it_beside_runs_it_creates_and_runs_that_exist(db):
    store.insert_run("existing")

    def finish_in_a_unit() -> None:
        with store.unit_of_work(["existing", "r1", "r2"]):
            store.update_run_status("existing", "completed")
            store.update_run_status("r1", "completed", final_metrics_json=SUMMARY)
            store.insert_run("r2", config_dict=CONFIG)

    _while_a_unit_creates_r1(finish_in_a_unit)

    assert store.get_run("r1")["status"] == "completed"
    assert store.get_run("r1")["gradient_method"] == "mgda"
    assert store.get_run("r1")["final_metrics_json"] == SUMMARY
    assert store.get_run("r2")["gradient_method"] == "mgda"
    assert store.get_run("existing")["status"] == "completed"
