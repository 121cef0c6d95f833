"""The engine behind the store: one per process, for the URL its caller configures (from Settings)."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    StatementError,
)

from store import jsoncodec, schema

if TYPE_CHECKING:
    # The drivers' connections, as the pool's listeners get them (each driver is imported by its
    # dialect, only when a database of its kind is used).
    import sqlite3

    import psycopg

    # The ORM is imported on first use of a session: the reads run on Core connections, and a
    # read command need not load it (tests/cli/test_startup.py).
    from sqlalchemy.orm import Session, sessionmaker
    from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# PostgreSQL's SQLSTATE for a relation that does not exist.
_UNDEFINED_TABLE = "42P01"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the connection; retrying later may work."""


def parse_url(url: str) -> URL:
    """Return ``url`` parsed, or raise ValueError naming what is wrong and the schemes supported."""
    schemes = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise ValueError(f"database URL {url!r} is not a URL: use {schemes}") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"database URL {parsed.render_as_string()!r}: {parsed.get_backend_name()} is not supported; "
            f"use {schemes}"
        )
    return parsed


def sqlite_file(url: str) -> Path | None:
    """Return the file an SQLite URL names, or None for PostgreSQL and in-memory databases."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def location(url: str) -> str:
    """Return ``url`` fit to show a user: its password hidden, an SQLite file as an absolute path."""
    path = sqlite_file(url)
    return str(path) if path else parse_url(url).render_as_string(hide_password=True)


def schema_missing(error: BaseException) -> bool:
    """Tell whether ``error`` says a table is missing: the database was never migrated."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DatabaseUnavailable) and str(cause).startswith("no such table"):
            return True
        # Through SQLAlchemy, or from the driver itself (the inbox writes with psycopg directly).
        if getattr(getattr(cause, "orig", cause), "sqlstate", None) == _UNDEFINED_TABLE:
            return True
        if isinstance(cause, OperationalError) and str(cause.orig).startswith("no such table"):
            return True
        cause = cause.__cause__
    return False


_lock = threading.Lock()
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None
# A read replica for the read side (web/): None reads through the main engine.
_replica: Engine | None = None
_replica_sessions: sessionmaker[Session] | None = None
_unit_of_work: ContextVar[Session | None] = ContextVar("unit_of_work", default=None)


def normalize_url(url: str) -> str:
    """Make plain ``postgres://`` and ``postgresql://`` URLs use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# Connections a process's pool keeps open, and how many more it may open at busy times. Every
# process of a deployment has its own pool: their sum must stay below PostgreSQL's
# max_connections (100 by default), or the server refuses the next (DATABASE_POOL_SIZE).
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5
_pool_limits = (DEFAULT_POOL_SIZE, DEFAULT_MAX_OVERFLOW)


def make_engine(
    url: str, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW
) -> Engine:
    """Create an engine with the store's JSON codec and per-backend settings."""
    backend = parse_url(url).get_backend_name()
    url = normalize_url(url)
    options: dict[str, object] = {
        "json_serializer": jsoncodec.dumps,
        "json_deserializer": jsoncodec.loads,
    }
    if backend == "postgresql":
        # No pre-ping: it costs a round trip per checkout. _hung_up finds what a restart of
        # the server left in the pool without one.
        options.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)
        schema.add_postgresql_options()
    engine = create_engine(url, **options)
    if backend == "postgresql":
        event.listen(engine, "checkout", _hung_up)
    if backend == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
    return engine


def _hung_up(
    dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    # An idle connection has nothing to read, unless the server ended it: a restart or shutdown
    # sends "terminating connection" and closes the socket. A poll tells so without a round
    # trip; the pool then opens a new connection instead (DisconnectionError).
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed this connection while it sat in the pool")


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that later writes can fail
    # with SQLITE_BUSY when another process (web and worker) wrote in between. Readers don't:
    # under WAL they see a snapshot and never block a writer.
    if connection.get_execution_options().get("read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def configure(
    url: str, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW
) -> Engine:
    """Point the store at ``url``, with at most ``pool_size + max_overflow`` connections to it
    (and as many to a replica), and return its engine."""
    global _engine, _sessions, _pool_limits
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _pool_limits = (pool_size, max_overflow)
        _engine = make_engine(url, *_pool_limits)
        _sessions = None
        _set_replica(None)
        return _engine


def configure_replica(url: str | None) -> None:
    """Serve the read side's queries (replica_transaction) from ``url``, or from the main database when None."""
    with _lock:
        _set_replica(url)


def _set_replica(url: str | None) -> None:
    global _replica, _replica_sessions
    if _replica is not None:
        _replica.dispose()
    _replica = make_engine(url, *_pool_limits) if url else None
    _replica_sessions = None


def get_engine() -> Engine:
    """Return the process's engine, or raise RuntimeError before ``configure``."""
    if _engine is None:
        # The store reads no environment: the app, the worker and the CLI pass Settings' URL.
        raise RuntimeError("the store is not configured: call store.configure(url) first")
    return _engine


def libpq_url() -> str:
    """Return the PostgreSQL URL as psycopg takes it, for a connection of its own."""
    return get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)


def autovacuum_off() -> bool:
    """Tell whether the PostgreSQL server runs without autovacuum (never on SQLite)."""
    if get_engine().dialect.name != "postgresql":
        return False
    with connect(begin=False) as connection:
        return connection.exec_driver_sql("SHOW autovacuum").scalar() == "off"


def plan_statements_once() -> None:
    """Have this process's PostgreSQL connections plan each prepared statement once, whatever its values.

    For the worker, whose statements all find rows by key. A batch locks its runs by an array of
    run ids; with only a few ids, PostgreSQL judged each execution's own plan cheaper than the
    generic one, estimated for ten, and planned the statement anew every time, which cost more
    than running it, twice a batch (bench/RESULTS.md). Not for the query API, whose best
    plan may depend on the values it filters by.
    """
    engine = get_engine()
    if engine.dialect.name == "postgresql" and not event.contains(engine, "connect", _plan_once):
        event.listen(engine, "connect", _plan_once)
        # Connections opened before, idle in the pool, would keep planning each time.
        engine.dispose()


def _plan_once(dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry) -> None:
    dbapi_connection.execute("SET plan_cache_mode = force_generic_plan")
    # Committed: the pool rolls back what a connection leaves open, and the setting with it.
    dbapi_connection.commit()


def _sessionmaker() -> sessionmaker[Session]:
    global _sessions
    sessions = _sessions
    if sessions is None:
        from sqlalchemy.orm import sessionmaker

        with _lock:
            if _sessions is None:
                _sessions = sessionmaker(get_engine(), expire_on_commit=False)
            sessions = _sessions
    return sessions


def _replica_sessionmaker() -> sessionmaker[Session] | None:
    """Return the read replica's sessions, or None when there is no replica."""
    global _replica_sessions
    sessions = _replica_sessions
    if sessions is None and _replica is not None:
        from sqlalchemy.orm import sessionmaker

        with _lock:
            if _replica_sessions is None and _replica is not None:
                _replica_sessions = sessionmaker(_replica, expire_on_commit=False)
            sessions = _replica_sessions
    return sessions


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn connection failures into DatabaseUnavailable, so callers need not know SQLAlchemy."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise DatabaseUnavailable(str(error.orig or error).strip().splitlines()[0]) from error


# Raised the same way on every attempt: values the database refuses (out of range, too long),
# statements it cannot run, and values that cannot even be sent. Lost connections, deadlocks and
# serialization failures are OperationalErrors (DatabaseUnavailable, once they reach a store
# caller); a unique violation may be a race another attempt wins: none of those is here.
_DETERMINISTIC_DATABASE_ERRORS = (DataError, ProgrammingError, NotSupportedError)


def deterministic(error: BaseException) -> bool:
    """Tell whether a store call failed in a way that will repeat whenever it is tried again."""
    if isinstance(error, DBAPIError):
        return isinstance(error, _DETERMINISTIC_DATABASE_ERRORS)
    # A value refused while it was bound, before the database saw it, and the same mistakes in Python.
    return isinstance(error, StatementError | ArithmeticError | LookupError | TypeError | RecursionError)


@contextmanager
def transaction() -> Iterator[Session]:
    """Yield a session whose work commits on success and rolls back on error.

    Inside ``unit_of_work()`` it yields the unit's session, and the unit commits.
    """
    joined = _unit_of_work.get()
    if joined is not None:
        yield joined
        return
    try:
        with unavailable_as_error(), _sessionmaker().begin() as session:
            yield session
    except StatementError as error:
        # A value refused while binding (the JSON codec's ValueError) is the caller's error.
        if isinstance(error.orig, ValueError):
            raise error.orig from None
        raise


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Make every store call in the block one transaction: all of it commits, or none.

    The worker applies a batch of events this way: one commit instead of one per event.
    """
    if _unit_of_work.get() is not None:
        raise RuntimeError("units of work do not nest")
    with transaction() as session:
        token = _unit_of_work.set(session)
        try:
            yield session
        finally:
            _unit_of_work.reset(token)


@contextmanager
def read_transaction() -> Iterator[Session]:
    """Yield a session for reading only; on SQLite it does not take the write lock."""
    joined = _unit_of_work.get()
    if joined is not None:
        yield joined
        return
    with unavailable_as_error(), _sessionmaker()() as session:
        session.connection(execution_options={"read_only": True})
        yield session


@contextmanager
def read_connection() -> Iterator[Connection]:
    """Yield a Core connection for reading only; on SQLite it does not take the write lock.

    Inside ``unit_of_work()`` it is the unit's connection, and reads what the unit wrote so far.
    """
    joined = _unit_of_work.get()
    if joined is not None:
        # The unit's records are written first, as before any statement its session runs.
        from store.records import write_changes

        with unavailable_as_error():
            write_changes(joined)
            yield joined.connection()
        return
    with unavailable_as_error(), _read_only(get_engine()) as connection:
        yield connection


@contextmanager
def replica_connection() -> Iterator[Connection]:
    """Yield a read-only Core connection to the read replica when one is configured, else to the main database."""
    replica = _replica
    if replica is None:
        with read_connection() as connection:
            yield connection
        return
    with unavailable_as_error(), _read_only(replica) as connection:
        yield connection


@contextmanager
def _read_only(engine: Engine) -> Iterator[Connection]:
    # Marked before its transaction begins, as read_transaction's session does (_begin_immediate).
    with engine.connect() as connection:
        connection.execution_options(read_only=True)
        yield connection


@contextmanager
def connect(begin: bool = True) -> Iterator[Connection]:
    """Yield a Core connection (in a transaction when ``begin``), failures as DatabaseUnavailable.

    Inside ``unit_of_work()`` a transactional connection is the unit's.
    """
    joined = _unit_of_work.get()
    if begin and joined is not None:
        with unavailable_as_error():
            yield joined.connection()
        return
    with unavailable_as_error():
        engine = get_engine()
        with engine.begin() if begin else engine.connect() as connection:
            yield connection


@contextmanager
def replica_transaction() -> Iterator[Session]:
    """Yield a read-only session on the read replica when one is configured, else on the main database."""
    sessions = _replica_sessionmaker()
    if sessions is None:
        with read_transaction() as session:
            yield session
        return
    with unavailable_as_error(), sessions() as session:
        session.connection(execution_options={"read_only": True})
        yield session
