"""Locks on runs: who may create a run, and the rows a transaction reads for update.

A transaction locks every run it changes before reading it, in an order that keeps two of them
from deadlocking; a unit of work locks all of its runs up front and keeps them in its session.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, literal_column, select, text, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from store import database, extract
from store.direct import Direct
from store.models import RunObjective, TrainingRun
from store.records import ObjectiveRecord, RunRecord, changes
from store.schema import utcnow

MAX_ID_LENGTH = 255
_RUNS = TrainingRun.__table__


def check_run_id(run_id: Any) -> str:
    """Return ``run_id`` if it is a usable run id, else raise ValueError."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError("run_id must be a non-empty string")
    if len(run_id) > MAX_ID_LENGTH:
        raise ValueError(f"run_id is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in run_id:
        raise ValueError("run_id must not contain NUL characters")
    return run_id


def lock_runs(session: Session, run_ids: Iterable[str]) -> tuple[dict[str, RunRecord], set[str]]:
    """Return the runs' rows locked for update, new records for runs that do not exist yet, and
    which runs are new.

    A new run is written once, when the transaction writes its changes: a placeholder row
    written now and updated then would cost a second write of the row and of its ten indexes.
    Meanwhile the transaction holds the right to create it (lock_creation). That right is taken
    for every run before looking, existing or not: looking first, and again after taking it for
    the runs not found, cost a statement more whenever a run was new (and one less when none
    was), and let three transactions deadlock.

    Creation locks are taken in the order of their keys and then rows in run_id order, so two
    transactions that lock their runs in one call do not deadlock. One that locks more runs in a
    later call (a unit of work whose calls touch a run it did not name) can; PostgreSQL then
    cancels one of them, which its caller sees as the database failing (the worker applies its
    events again).
    """
    wanted = sorted({check_run_id(run_id) for run_id in run_ids})
    if not wanted:
        return {}, set()
    lock_creation(session, wanted)
    runs = _select_for_update(session, wanted)
    now = utcnow()
    created = {
        run_id: RunRecord({"run_id": run_id, "status": extract.UNKNOWN, "created_at": now, "updated_at": now})
        for run_id in wanted
        if run_id not in runs
    }
    for run in created.values():
        changes(session).add(run)
    runs.update(created)
    return runs, set(created)


def lock_creation(session: Session, run_ids: list[str]) -> None:
    """Take the right to create these runs until the transaction ends, waiting for any other
    transaction that holds it.

    Whoever creates a run holds it, and so does whoever locks a run (lock_runs): on PostgreSQL an
    advisory lock on the run's id. SQLite lets one writing transaction at a time begin. Each lock
    takes a slot of the server's lock table until the commit, and the table holds
    max_locks_per_transaction per connection in all (64 by default): a transaction should lock
    hundreds of runs at most.
    """
    if session.get_bind().dialect.name == "postgresql":
        _LOCK_CREATION.execute(session.connection(), {"run_ids": run_ids})


# A run is read for update without its deferred documents, but with whether they are NULL:
# a call that replaces one then knows without reading it that there was nothing before.
_IS_NULL = {column: f"{column}_is_null" for column in RunRecord.deferred}
_RUN_FOR_UPDATE = [column for column in _RUNS.columns if column.key not in _IS_NULL] + [
    _RUNS.c[column].is_(None).label(label) for column, label in _IS_NULL.items()
]


def _run_record(values: dict[str, Any]) -> RunRecord:
    unread = [column for column, label in _IS_NULL.items() if not values.pop(label)]
    run = RunRecord(values)
    for column in unread:
        del run.__dict__[column]
    return run


def _run_ids(name: str) -> Any:
    """The ``run_ids`` array parameter as a table of one column, ``run_id``."""
    return (
        func.unnest(bindparam("run_ids", type_=postgresql.ARRAY(String)))
        .table_valued("run_id")
        .render_derived(name)
    )


def _one_lookup_per_run(columns: list[Any], run_id: Any, lock: bool) -> Any:
    """Select ``columns`` with one primary-key lookup per run of the ``run_ids`` parameter.

    Used on PostgreSQL, whatever its planner believes: without statistics (before autovacuum's
    first analyze, or with it off) it takes run_id IN (...) for much of a table and scans all
    of it, in every batch (bench/RESULTS.md, "Figures from the code"). Locks are taken in the order
    of ``run_ids``; without one, OFFSET 0 keeps the subquery from being merged into the join.
    """
    wanted = _run_ids("wanted")
    each = select(*columns).where(run_id == wanted.c.run_id)
    each = each.with_for_update() if lock else each.offset(0)
    found = each.lateral("found")
    return select(found).select_from(wanted.join(found, true()))


_RUNS_FOR_UPDATE = Direct(_one_lookup_per_run(_RUN_FOR_UPDATE, _RUNS.c.run_id, lock=True))

# The advisory locks' first key, which sets them apart from any other use of advisory locks.
_CREATION_LOCKS = 0x74726462
_ids_to_lock = _run_ids("ids_to_lock")
# In the order of the keys, distinct, whatever the order of the ids: ids whose keys collide
# then take their one lock in the same order as any other.
_keys = select(func.hashtext(_ids_to_lock.c.run_id).label("key")).distinct().order_by("key").subquery("keys")
_LOCK_CREATION = Direct(
    select(func.pg_advisory_xact_lock(literal_column(str(_CREATION_LOCKS), Integer), _keys.c.key))
)


def _select_for_update(session: Session, run_ids: list[str]) -> dict[str, RunRecord]:
    """Lock and read runs, ``run_ids`` sorted and not empty."""
    if session.get_bind().dialect.name == "postgresql":
        rows = _RUNS_FOR_UPDATE.execute(session.connection(), {"run_ids": run_ids})
    else:
        statement = select(*_RUN_FOR_UPDATE).where(_RUNS.c.run_id.in_(run_ids)).order_by(_RUNS.c.run_id)
        rows = [dict(row._mapping) for row in session.execute(statement)]
    return _tracked_runs(session, rows)


def _tracked_runs(session: Session, rows: list[dict[str, Any]]) -> dict[str, RunRecord]:
    """Turn rows read for update into records the session writes back when they change."""
    runs = {run.run_id: run for run in map(_run_record, rows)}
    changes(session).read(runs.values())
    return runs


def lock_run(session: Session, run_id: str) -> tuple[RunRecord, bool]:
    """Return the run's row locked for update, or a new record when it does not exist yet, and
    whether it is new."""
    runs, created = lock_runs(session, [run_id])
    return runs[run_id], run_id in created


_OBJECTIVES = RunObjective.__table__
_OBJECTIVES_OF_RUNS = Direct(_one_lookup_per_run(list(_OBJECTIVES.columns), _OBJECTIVES.c.run_id, lock=False))


def load_objectives(session: Session, run_ids: Iterable[str]) -> dict[str, dict[str, ObjectiveRecord]]:
    """Return each run's objectives by name (an empty dict for a run without any)."""
    ids = list(run_ids)
    objectives: dict[str, dict[str, ObjectiveRecord]] = {run_id: {} for run_id in ids}
    if not ids:
        return objectives
    if session.get_bind().dialect.name == "postgresql":
        rows = _OBJECTIVES_OF_RUNS.execute(session.connection(), {"run_ids": ids})
    else:
        statement = select(_OBJECTIVES).where(_OBJECTIVES.c.run_id.in_(ids))
        rows = [dict(row._mapping) for row in session.execute(statement)]
    loaded = [ObjectiveRecord(row) for row in rows]
    changes(session).read(loaded)
    for objective in loaded:
        objectives[objective.run_id][objective.objective_name] = objective
    return objectives


# A unit of work keeps the runs it locked, with their objectives, in its session's info.
LOCKED = "locked_runs"


def lock_for_unit(session: Session, run_ids: Iterable[str]) -> None:
    """Lock and load runs for the unit of work ``session`` belongs to, all in one go."""
    locked = session.info.setdefault(LOCKED, {})
    wanted = {check_run_id(run_id) for run_id in run_ids} - set(locked)
    if wanted:
        runs, created = lock_runs(session, wanted)
        # A run created just now has no objectives to read.
        objectives = load_objectives(session, [run_id for run_id in runs if run_id not in created])
        for run_id, run in runs.items():
            locked[run_id] = (run, objectives.get(run_id, {}))


@contextmanager
def unit_of_work(run_ids: Iterable[str] = (), flush_at_commit: bool = True) -> Iterator[Session]:
    """Make the store calls in the block one transaction, with ``run_ids`` locked up front.

    Each run is read once and written once at the commit, however many calls touch it;
    the calls return what they would return on their own. Nothing commits if the block raises.
    With ``flush_at_commit=False``, for writes that can be made again from a durable source
    (the worker's, from the inbox), PostgreSQL's commit does not wait for the disk: a crash of
    the server may lose the last fraction of a second of such commits, each whole.
    """
    with database.unit_of_work() as session:
        if not flush_at_commit and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit = off"))
        lock_for_unit(session, run_ids)
        yield session
