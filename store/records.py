"""Rows the store changes, as plain objects written back with Core statements.

The worker applies hundreds of events a second. With ORM instances, attribute
instrumentation and the unit-of-work flush cost more CPU than the statements they
issued (bench/RESULTS.md). A record holds a row's values as plain attributes; the
transaction that read it writes what changed, comparing with the values as read,
before it commits or runs another statement through its session, as the ORM's autoflush
would. (The locking reads that go straight to the driver, store/direct.py, read only rows
the transaction holds no changes to.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache, lru_cache
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    Connection,
    Delete,
    Dialect,
    Table,
    and_,
    bindparam,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.orm import ORMExecuteState, Session

from store.direct import Direct, driver_connection, driver_errors
from store.models import RunObjective, TrainingRun


class _Unloaded:
    def __repr__(self) -> str:
        return "<not read>"


# The value of a deferred column not read yet.
UNLOADED = _Unloaded()


class Record:
    """One row of ``table``: every column an attribute (None when unset).

    A ``deferred`` column may be left out when the row is read; it is read from the
    database the first time it is asked for.
    """

    table: ClassVar[Table]
    columns: ClassVar[tuple[str, ...]]
    key: ClassVar[tuple[str, ...]]
    deferred: ClassVar[tuple[str, ...]] = ()

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(dict.fromkeys(self.columns))
        self.__dict__.update(values)

    def values(self) -> tuple[Any, ...]:
        """The columns' values, UNLOADED for a deferred one not read yet."""
        return tuple(map(self.__dict__.get, self.columns, repeat(UNLOADED)))

    if TYPE_CHECKING:
        # Every column is an attribute, set as plainly as it is read (see __getattr__).
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __getattr__(self, name: str) -> Any:
        # Reached only when the attribute is missing: a deferred column not read yet.
        tracker = self.__dict__.get("_changes")
        if name not in self.deferred or tracker is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = tracker.original(self, name)
        self.__dict__[name] = value
        return value


class RunRecord(Record):
    table = TrainingRun.__table__
    columns = tuple(column.key for column in TrainingRun.__table__.columns)
    key = ("run_id",)
    # Turning a run's launch config and W&B summary into Python cost more than all the rest
    # of reading it for update, and most calls only replace them or never look.
    deferred = ("config_json", "final_metrics_json")


class ObjectiveRecord(Record):
    table = RunObjective.__table__
    columns = tuple(column.key for column in RunObjective.__table__.columns)
    key = ("run_id", "objective_name")


# Referenced tables before the tables that reference them.
_TABLES = TrainingRun.metadata.sorted_tables


class Changes:
    """The records one transaction read or created, and those it deleted."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # By identity: a record's values as last written (or read), or None while it is new.
        self.tracked: dict[int, tuple[Record, tuple[Any, ...] | None]] = {}
        self.deleted: list[Record] = []
        # Called before each write, to bring records up to date (store/history.py packs the
        # chunks it changed then, once however many points a transaction added to them).
        self.before_write: list[Callable[[], None]] = []

    def read(self, records: Iterable[Record]) -> None:
        for record in records:
            record.__dict__["_changes"] = self
            self.tracked[id(record)] = (record, record.values())

    def original(self, record: Record, column: str) -> Any:
        """Return the column's value as last written, reading a deferred one from the database.

        Read on the connection, not the session: a pending change must not be written first.
        """
        _, written = self.tracked[id(record)]
        assert written is not None
        index = record.columns.index(column)
        if written[index] is not UNLOADED:
            return written[index]
        table = record.table
        value = (
            self.session.connection()
            .execute(select(table.c[column]).where(_by_key(table)), _key(record))
            .scalar_one()
        )
        self.tracked[id(record)] = (record, (*written[:index], value, *written[index + 1 :]))
        return value

    def add(self, record: Record) -> None:
        self.tracked[id(record)] = (record, None)

    def stored(self, record: Record) -> bool:
        """Tell whether the record's row was read from, or written to, the database."""
        tracked = self.tracked.get(id(record))
        return tracked is not None and tracked[1] is not None

    def delete(self, record: Record) -> None:
        _, written = self.tracked.pop(id(record))
        if written is not None:
            self.deleted.append(record)

    def write(self, session: Session) -> None:
        """Issue the deletes, updates and inserts the records need, grouped per statement."""
        for prepare in self.before_write:
            prepare()
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
                row = {f"new_{column}": record.__dict__[column] for column in changed}
                updates.setdefault((record.table, changed), []).append({**row, **_key(record)})
            self.tracked[identity] = (record, values)
        if not (deletes or updates or inserts):
            return
        connection = session.connection()
        for table, keys in deletes.items():
            connection.execute(_delete(table), keys)
        on_postgresql = connection.dialect.name == "postgresql"
        for (table, changed), rows in updates.items():
            if on_postgresql:
                _update(table, changed).execute_many(connection, rows)
            else:
                connection.execute(_update(table, changed).statement, rows)
        # A new run before its new objectives.
        for table in sorted(inserts, key=_TABLES.index):
            rows = inserts[table]
            if on_postgresql:
                _copy(connection, table, rows)
            else:
                connection.execute(insert(table), rows)


@cache
def _copy_statement(table: Table, dialect: Dialect) -> tuple[str, tuple[str, ...], list[Any]]:
    names = tuple(column.key for column in table.columns)
    processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns]
    return f"COPY {table.name} ({', '.join(names)}) FROM STDIN", names, processors


def _copy(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert new rows with COPY, on PostgreSQL.

    An executemany runs the INSERT once per row, each paying its own parsing, planning and
    executor start-up in the server and parameter handling in the driver: for a batch's
    objectives that cost more than anything else the worker wrote (bench/RESULTS.md).
    SQLAlchemy has no COPY, so failures are raised as it raises them, a lost connection
    invalidated, for the store's callers to tell them apart as they always do.
    """
    statement, names, processors = _copy_statement(table, connection.dialect)
    with (
        driver_errors(connection, statement),
        driver_connection(connection).cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            values = [row[name] for name in names]
            copy.write_row([v if p is None else p(v) for v, p in zip(values, processors, strict=True)])


def _key(record: Record) -> dict[str, Any]:
    return {f"key_{column}": record.__dict__[column] for column in record.key}


@cache
def _by_key(table: Table) -> Any:
    return and_(*(column == bindparam(f"key_{column.key}") for column in table.primary_key.columns))


# Bounded: each set of changed columns is a statement of its own.
@lru_cache(maxsize=256)
def _update(table: Table, columns: tuple[str, ...]) -> Direct:
    values = {column: bindparam(f"new_{column}", type_=table.c[column].type) for column in columns}
    return Direct(update(table).where(_by_key(table)).values(values))


def _delete(table: Table) -> Delete:
    return delete(table).where(_by_key(table))


CHANGES = "record_changes"


def changes(session: Session) -> Changes:
    """Return the records ``session`` tracks, creating the tracker on first use."""
    tracker = session.info.get(CHANGES)
    if tracker is None:
        tracker = session.info[CHANGES] = Changes(session)
    return tracker


def write_changes(session: Session) -> None:
    """Write what the records ``session`` tracks changed since they were read or last written."""
    tracker = session.info.get(CHANGES)
    if tracker is not None:
        tracker.write(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_changes(session)


@event.listens_for(Session, "do_orm_execute")
def _before_execute(state: ORMExecuteState) -> None:
    write_changes(state.session)
