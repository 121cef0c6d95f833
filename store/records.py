"""Rows the store changes, as plain objects written back with Core statements.

The worker applies hundreds of events a second. With ORM instances, attribute
instrumentation and the unit-of-work flush cost more CPU than the statements they
issued (bench/RESULTS.md). A record holds a row's values as plain attributes; the
transaction that read it writes what changed, comparing with the values as read,
before it commits or runs another statement in its session, as the ORM's autoflush
would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import Table, and_, bindparam, delete, event, insert, update
from sqlalchemy.orm import ORMExecuteState, Session

from store.models import RunObjective, TrainingRun


class Record:
    """One row of ``table``: every column an attribute (None when unset)."""

    table: ClassVar[Table]
    columns: ClassVar[tuple[str, ...]]
    key: ClassVar[tuple[str, ...]]

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(dict.fromkeys(self.columns))
        self.__dict__.update(values)

    def values(self) -> tuple[Any, ...]:
        return tuple(map(self.__dict__.get, self.columns))


class RunRecord(Record):
    table = TrainingRun.__table__
    columns = tuple(column.key for column in TrainingRun.__table__.columns)
    key = ("run_id",)


class ObjectiveRecord(Record):
    table = RunObjective.__table__
    columns = tuple(column.key for column in RunObjective.__table__.columns)
    key = ("run_id", "objective_name")


class Changes:
    """The records one transaction read or created, and those it deleted."""

    def __init__(self) -> None:
        # By identity: a record's values as last written, or None while it is new.
        self.tracked: dict[int, tuple[Record, tuple[Any, ...] | None]] = {}
        self.deleted: list[Record] = []

    def read(self, records: Iterable[Record]) -> None:
        for record in records:
            self.tracked[id(record)] = (record, record.values())

    def add(self, record: Record) -> None:
        self.tracked[id(record)] = (record, None)

    def delete(self, record: Record) -> None:
        _, written = self.tracked.pop(id(record))
        if written is not None:
            self.deleted.append(record)

    def write(self, session: Session) -> None:
        """Issue the deletes, updates and inserts the records need, grouped per statement."""
        # Deletes first: an objective removed and then created again must not collide.
        deletes: dict[Table, list[dict[str, Any]]] = {}
        updates: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        inserts: dict[Table, list[dict[str, Any]]] = {}
        for record in self.deleted:
            deletes.setdefault(record.table, []).append(_key(record))
        self.deleted = []
        for identity, (record, written) in self.tracked.items():
            values = record.values()
            if written is None:
                inserts.setdefault(record.table, []).append(dict(zip(record.columns, values, strict=True)))
            else:
                changed = tuple(
                    column
                    for column, old, new in zip(record.columns, written, values, strict=True)
                    if old is not new and old != new
                )
                if not changed:
                    continue
                row = {column: record.__dict__[column] for column in changed}
                updates.setdefault((record.table, changed), []).append({**row, **_key(record)})
            self.tracked[identity] = (record, values)
        if not (deletes or updates or inserts):
            return
        connection = session.connection()
        for table, keys in deletes.items():
            connection.execute(_delete(table), keys)
        for (table, _), rows in updates.items():
            connection.execute(_update(table), rows)
        for table, rows in inserts.items():
            connection.execute(insert(table), rows)


def _key(record: Record) -> dict[str, Any]:
    return {f"key_{column}": record.__dict__[column] for column in record.key}


@cache
def _by_key(table: Table) -> Any:
    return and_(*(column == bindparam(f"key_{column.key}") for column in table.primary_key.columns))


def _update(table: Table) -> Any:
    # Without .values(): the SET clause takes the columns each row names.
    return update(table).where(_by_key(table))


def _delete(table: Table) -> Any:
    return delete(table).where(_by_key(table))


CHANGES = "record_changes"


def changes(session: Session) -> Changes:
    """Return the records ``session`` tracks, creating the tracker on first use."""
    tracker = session.info.get(CHANGES)
    if tracker is None:
        tracker = session.info[CHANGES] = Changes()
    return tracker


def _write_changes(session: Session) -> None:
    tracker = session.info.get(CHANGES)
    if tracker is not None:
        tracker.write(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_changes(session)


@event.listens_for(Session, "do_orm_execute")
def _before_execute(state: ORMExecuteState) -> None:
    _write_changes(state.session)
