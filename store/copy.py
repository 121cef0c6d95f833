"""Copy a whole training database to another, e.g. the SQLite file into PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select
from sqlalchemy.engine import make_url

from store import migrate
from store.database import make_engine, normalize_url, unavailable_as_error
from store.models import Base


class CopyFailed(Exception):
    """The target's row counts differ from the source's after the copy; nothing was kept."""


# Called after each batch with the table's name, its rows copied so far and its total.
Progress = Callable[[str, int, int], None]


def copy_database(
    source_url: str,
    target_url: str,
    replace: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Copy every table from source to target in one target transaction; return rows per table.

    The target is migrated to the newest schema first and must be empty unless ``replace``,
    which deletes its rows. Counts are verified before the commit: on any difference nothing
    is kept. PostgreSQL sequences continue after the copied ids.
    """
    source_location = make_url(normalize_url(source_url))
    if source_location == make_url(normalize_url(target_url)):
        raise ValueError("the source and the target are the same database")
    # SQLite would create a missing file and then find it empty: name the real problem.
    if source_location.get_backend_name() == "sqlite" and not Path(source_location.database or "").is_file():
        raise ValueError(f"no SQLite database at {source_location.database}")
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        with unavailable_as_error():
            if not migrate.schema_is_current(source):
                raise ValueError(
                    "the source schema is not at the newest migration: run `training-db migrate` on it first"
                )
            migrate.upgrade(target)
            return _copy(source, target, replace, batch_size, progress)
    finally:
        source.dispose()
        target.dispose()


def _copy(
    source: Engine, target: Engine, replace: bool, batch_size: int, progress: Progress | None
) -> dict[str, int]:
    tables = Base.metadata.sorted_tables
    reading = source.connect()
    if source.dialect.name == "postgresql":
        # One snapshot for every table, so that rows and counts agree while the source is written.
        reading = reading.execution_options(isolation_level="REPEATABLE READ")
    with reading, reading.begin(), target.begin() as writing:
        counts = {table.name: _count(reading, table) for table in tables}
        _make_room(writing, tables, replace)
        for table in tables:
            _copy_table(reading, writing, table, batch_size, counts[table.name], progress)
        copied = {table.name: _count(writing, table) for table in tables}
        if copied != counts:
            raise CopyFailed(
                f"row counts differ after the copy, nothing kept: source {counts}, target {copied}"
            )
        if target.dialect.name == "postgresql":
            _continue_sequences(writing, tables)
    return counts


def _count(connection: Connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _make_room(writing: Connection, tables: list[Table], replace: bool) -> None:
    filled = {table.name: n for table in tables if (n := _count(writing, table))}
    if filled and not replace:
        rows = ", ".join(f"{name} {n}" for name, n in filled.items())
        raise ValueError(f"the target database is not empty ({rows}): pass --replace to delete its rows")
    for table in reversed(tables):
        writing.execute(delete(table))


def _copy_table(
    reading: Connection,
    writing: Connection,
    table: Table,
    batch_size: int,
    total: int,
    progress: Progress | None,
) -> None:
    rows = reading.execute(
        select(table).order_by(*table.primary_key.columns).execution_options(yield_per=batch_size)
    )
    done = 0
    for batch in rows.partitions():
        writing.execute(insert(table), [row._asdict() for row in batch])
        done += len(batch)
        if progress is not None:
            progress(table.name, done, total)


def _continue_sequences(writing: Connection, tables: list[Table]) -> None:
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        highest = func.max(column)
        writing.execute(
            select(
                func.setval(
                    func.pg_get_serial_sequence(table.name, column.name),
                    func.coalesce(highest, 1),
                    highest.is_not(None),
                )
            )
        )
