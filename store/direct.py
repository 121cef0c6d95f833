"""Core statements run straight on the driver's cursor: the worker's hot path on PostgreSQL.

Through SQLAlchemy's execution each statement cost the worker more CPU than on
the driver (building the result's metadata from a fresh cursor description, compiling the
parameters, the session's events), more than the statement cost PostgreSQL: a batch's
locking reads and writes took most of the worker's time for a small batch
(bench/RESULTS.md). A ``Direct`` statement is compiled by SQLAlchemy once per dialect and run
in the session's transaction with the column types' bind and result processors, as
SQLAlchemy would run it; the driver's errors are raised as SQLAlchemy raises them, a lost
connection invalidated, for the store's callers to tell them apart as they always do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Connection, Dialect, Float, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Select, UpdateBase

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.dialects.postgresql import Insert

Processor = Callable[[Any], Any]
# What a Direct runs: a query, or an INSERT, UPDATE or DELETE (its RETURNING columns are its results).
Statement = Select[Any] | UpdateBase


@dataclass
class _Compiled:
    sql: str
    defaults: dict[str, Any]
    binds: Mapping[str, Processor]
    columns: tuple[str, ...]
    types: tuple[Any, ...]
    # Known from the first result's column types, as SQLAlchemy learns them.
    results: tuple[tuple[int, Processor], ...] | None = None


def driver_connection(connection: Connection) -> psycopg.Connection[Any]:
    """Return the psycopg connection under ``connection``, a PostgreSQL one."""
    import psycopg

    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, psycopg.Connection):
        raise TypeError(f"statements run on the driver need psycopg, not {type(dbapi_connection)!r}")
    return dbapi_connection


def _floats(values: Any) -> list[float | None] | None:
    # A binary array takes one element type, its first value's: an int among floats must be one.
    return None if values is None else [None if value is None else float(value) for value in values]


@contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy would, invalidating a lost connection."""
    try:
        yield
    except Exception as error:
        # Imported here: loading psycopg took a third of a read command's start-up on SQLite,
        # whose statements never get here with one of its errors.
        import psycopg

        if not isinstance(error, psycopg.Error):
            raise
        dbapi_connection = connection.connection.dbapi_connection
        # SQLAlchemy types the error as a class declared inside its DBAPIModule protocol, which
        # no driver's exception derives from; psycopg.Error is what its psycopg dialect takes.
        lost = connection.dialect.is_disconnect(error, dbapi_connection, None)  # type: ignore[arg-type]
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            statement, None, error, psycopg.Error, connection_invalidated=lost, dialect=connection.dialect
        ) from error


def execute_sql(connection: Connection, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run PostgreSQL text (psycopg's ``%(name)s`` parameters) on the connection's driver, in its
    transaction; return the rows it returns, errors raised as SQLAlchemy raises them."""
    with driver_errors(connection, sql), driver_connection(connection).cursor() as cursor:
        cursor.execute(sql, parameters)
        return cursor.fetchall() if cursor.description is not None else []


class Direct:
    """A Core statement compiled once per dialect and run on the connection's driver cursor."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._compiled: dict[Dialect, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            sql = self.statement.compile(dialect=dialect)
            # A statement compiles with the dialect's statement compiler, which names its binds.
            assert isinstance(sql, SQLCompiler)
            parameters = {sql.bind_names[bind]: bind for bind in sql.binds.values()}
            defaults = {name: bind.effective_value for name, bind in parameters.items() if not bind.required}
            binds: dict[str, Processor] = {
                name: processor
                for name, bind in parameters.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            }
            # Arrays go in binary: as text, psycopg tests every element against a regular
            # expression to quote and escape it, which cost a molecule batch's statements
            # about three times what binary does (bench/RESULTS.md).
            text = sql.string
            for name, bind in parameters.items():
                if isinstance(bind.type, ARRAY):
                    text = text.replace(f"%({name})s", f"%({name})b")
                    if isinstance(bind.type.item_type, Float):
                        binds[name] = _floats
            exported = list(getattr(self.statement, "exported_columns", ()))
            columns = tuple(column.key for column in exported)
            compiled = _Compiled(text, defaults, binds, columns, tuple(column.type for column in exported))
            self._compiled[dialect] = compiled
        return compiled

    def _results(
        self, compiled: _Compiled, dialect: Dialect, cursor: psycopg.Cursor[Any]
    ) -> tuple[tuple[int, Processor], ...]:
        if compiled.results is None:
            # Asked only once the statement returned rows, which the cursor then describes.
            assert cursor.description is not None
            compiled.results = tuple(
                (index, processor)
                for index, (type_, described) in enumerate(
                    zip(compiled.types, cursor.description, strict=True)
                )
                if (processor := type_.dialect_impl(dialect).result_processor(dialect, described.type_code))
                is not None
            )
        return compiled.results

    def _parameters(self, compiled: _Compiled, parameters: Mapping[str, Any]) -> dict[str, Any]:
        values = {**compiled.defaults, **parameters}
        for name, processor in compiled.binds.items():
            values[name] = processor(values[name])
        return values

    def execute(self, connection: Connection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Execute with ``parameters``; return the rows it returns, as dicts of column name to value."""
        compiled = self._compile(connection.dialect)
        with driver_errors(connection, compiled.sql), driver_connection(connection).cursor() as cursor:
            cursor.execute(compiled.sql, self._parameters(compiled, parameters))
            if not compiled.columns:
                return []
            fetched = cursor.fetchall()
            results = self._results(compiled, connection.dialect, cursor) if fetched else ()
        rows = []
        for values in fetched:
            if results:
                values = list(values)
                for index, processor in results:
                    values[index] = processor(values[index])
            rows.append(dict(zip(compiled.columns, values, strict=True)))
        return rows

    def execute_many(self, connection: Connection, parameters: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per set of parameters, in one round trip."""
        compiled = self._compile(connection.dialect)
        with driver_errors(connection, compiled.sql), driver_connection(connection).cursor() as cursor:
            cursor.executemany(compiled.sql, [self._parameters(compiled, row) for row in parameters])


def insert_from_arrays(table: Table, names: Sequence[str]) -> Insert:
    """PostgreSQL: insert rows of ``table``'s columns ``names`` from one array parameter per
    column, named after it, in array order (unnest): one statement, where executemany runs one
    per row.

    A document column is sent as text and cast, so that a missing document is NULL, not JSON null.
    """
    # Imported here: the PostgreSQL dialect stays unloaded by a read command on SQLite.
    from sqlalchemy import Text, bindparam, cast, func, select
    from sqlalchemy.dialects import postgresql

    from store.schema import DocumentType

    columns = {name: table.c[name].type for name in names}
    arrays = (
        func.unnest(
            *[
                bindparam(name, type_=postgresql.ARRAY(Text if isinstance(type_, DocumentType) else type_))
                for name, type_ in columns.items()
            ]
        )
        .table_valued(*columns)
        .render_derived("batch")
    )
    rows = select(
        *[
            cast(arrays.c[name], postgresql.JSONB) if isinstance(type_, DocumentType) else arrays.c[name]
            for name, type_ in columns.items()
        ]
    )
    return postgresql.insert(table).from_select(list(names), rows)
