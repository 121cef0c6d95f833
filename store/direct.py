"""Core statements run straight on the driver's cursor: the worker's hot path on PostgreSQL.

Through SQLAlchemy's execution each statement cost the worker 100-150 µs of CPU more than on
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
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any]


@dataclass
class _Compiled:
    sql: str
    defaults: dict[str, Any]
    binds: dict[str, Processor]
    columns: tuple[str, ...]
    types: tuple[Any, ...]
    # Known from the first result's column types, as SQLAlchemy learns them.
    results: tuple[tuple[int, Processor], ...] | None = None


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
        lost = connection.dialect.is_disconnect(error, dbapi_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            statement, None, error, psycopg.Error, connection_invalidated=lost, dialect=connection.dialect
        ) from error


class Direct:
    """A Core statement compiled once per dialect and run on the connection's driver cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[Dialect, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            sql = self.statement.compile(dialect=dialect)
            parameters = {sql.bind_names[bind]: bind for bind in sql.binds.values()}
            defaults = {name: bind.effective_value for name, bind in parameters.items() if not bind.required}
            binds = {
                name: processor
                for name, bind in parameters.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            }
            exported = list(getattr(self.statement, "exported_columns", ()))
            columns = tuple(column.key for column in exported)
            compiled = _Compiled(
                sql.string, defaults, binds, columns, tuple(column.type for column in exported)
            )
            self._compiled[dialect] = compiled
        return compiled

    def _results(
        self, compiled: _Compiled, dialect: Dialect, cursor: Any
    ) -> tuple[tuple[int, Processor], ...]:
        if compiled.results is None:
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
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with driver_errors(connection, compiled.sql), cursor:
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
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with driver_errors(connection, compiled.sql), cursor:
            cursor.executemany(compiled.sql, [self._parameters(compiled, row) for row in parameters])
