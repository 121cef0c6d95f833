"""The durable inbox: every authenticated delivery, byte for byte, and its processing state.

The web process records deliveries; workers claim them, run handlers, and
record the outcome. Statuses: ``pending`` (waiting), ``processing`` (claimed),
``done``, ``ignored``, ``failed`` (will be retried), ``dead`` (gave up: its attempts ran out, or
its failure would repeat), ``invalid`` (failed validation; kept for replay after a fix). An event
applied with warnings (a value its typed column could not hold...) keeps them in ``warnings``.
"""

from __future__ import annotations

import atexit
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    String,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite

from store.database import DatabaseUnavailable, connect, get_engine, libpq_url, replica_connection
from store.direct import Direct
from store.schema import INBOX_STATUSES, UNFINISHED, inbox_events, utcnow

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
RETRYABLE = ("pending", "failed")
# The worker owns pending and processing events: replaying them would race it.
REPLAYABLE = ("done", "ignored", "failed", "dead", "invalid")


@dataclass(frozen=True)
class Delivery:
    """One inbox row as plain values."""

    id: int
    source: str
    kind: str
    dedupe_key: str
    received_at: datetime
    body: bytes
    headers: dict[str, Any]
    status: str
    attempts: int
    last_error: str | None
    processed_at: datetime | None = None
    # Not claimed (a claimed event has none yet): None in a claim's deliveries.
    warnings: list[str] | None = None


_COLUMNS = [inbox_events.c[name] for name in Delivery.__dataclass_fields__]


def _delivery(row: Any) -> Delivery:
    values = dict(row._mapping)
    values["body"] = bytes(values["body"])
    return Delivery(**values)


_SQLITE_INSERT = (
    sqlite.insert(inbox_events)
    .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    .returning(inbox_events.c.id)
)

# The web process's one write, on PostgreSQL: straight on psycopg, over connections reused
# from one request to the next. SQLAlchemy's execution and pool cost more CPU than the
# insert's round trip (bench/RESULTS.md); so does dumping Python datetimes, hence now().
_INSERT_SQL = (
    "INSERT INTO inbox_events"
    " (source, kind, dedupe_key, received_at, body, headers, status, attempts, last_error, next_attempt_at,"
    " run_id)"
    " VALUES ($1, $2, $3, now(), $4, $5, $6, 0, $7, now(), $8)"
    " ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id"
)
_EXISTING_SQL = "SELECT id FROM inbox_events WHERE source = $1 AND dedupe_key = $2"
# Past waiting: its handler has run or is running, so an identical delivery must run again.
PAST_WAITING = ("processing", "done", "ignored", "dead")
# The delivery past waiting gives up its key to the new one, keeping it made unique by its id.
_SUPERSEDE_SQL = (
    "UPDATE inbox_events SET dedupe_key = dedupe_key || '@' || id"
    " WHERE source = $1 AND dedupe_key = $2 AND status = ANY($3) RETURNING id"
)


def _superseded(status: str) -> list[str]:
    """Return the statuses of an earlier delivery with the same key that a new one replaces.

    A delivery refused as invalid stays the answer to the same bytes refused again; bytes that
    now validate (the schema was fixed since) replace it.
    """
    return list(PAST_WAITING) if status == "invalid" else [*PAST_WAITING, "invalid"]


# Every statement on these connections finds its rows by key, or in id order, through an index.
# Without statistics (autovacuum off, or before its first analyze) the planner answered a claim
# with a bitmap scan of the whole unfinished-events index and a sort: it read every entry that
# the events processed since the last vacuum left behind, in every claim (several times an
# index scan's cost: bench/RESULTS.md, "Figures from the code"). An index scan in id order
# stops after the batch, and marks the dead entries it passes so that the next claims skip
# them. Set after connecting rather than as startup options, which would replace any the URL
# carries.
_INDEX_SCANS_ONLY = (
    "SELECT set_config('enable_bitmapscan', 'off', false), set_config('enable_seqscan', 'off', false)"
)

_CLAIM_SQL = (
    "UPDATE inbox_events SET status = 'processing', claimed_at = $1, attempts = attempts + 1"
    " WHERE id = ANY(ARRAY("
    "SELECT id FROM inbox_events"
    " WHERE status IN ('pending', 'failed', 'processing')"
    " AND (status IN ('pending', 'failed') AND next_attempt_at <= $1"
    " OR status = 'processing' AND claimed_at < $2)"
    " AND (run_id IS NULL OR NOT EXISTS (SELECT 1 FROM inbox_events busy WHERE busy.run_id = inbox_events.run_id"
    " AND busy.status = 'processing' AND busy.claimed_at >= $2))"
    " ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED))"
    # Delivery's fields, in order.
    " RETURNING id, source, kind, dedupe_key, received_at, body, headers, status, attempts,"
    " last_error, processed_at"
)


class _Connections:
    """psycopg connections to the store's database, reused one request after another.

    Each comes with one cursor, reused too: psycopg keeps a cursor's adapters while it runs the
    same statement again, where a new cursor sets them up anew (34 thousand instructions of the
    web's 880 thousand per request, bench/web_instructions.py).
    """

    def __init__(self, limit: int) -> None:
        # list.pop and list.append are atomic: threads share the idle list without a lock.
        self.idle: list[tuple[Engine, psycopg.RawCursor[Any]]] = []
        # A gevent web worker serves many requests at once, and psycopg lets another run while
        # one waits on the database: unbounded, a burst would open a connection per request
        # and run past PostgreSQL's max_connections. Patched by gevent, the semaphore makes a
        # request wait its turn without blocking the others.
        self.slots = threading.BoundedSemaphore(limit)

    def _take_idle(self, engine: Engine) -> psycopg.RawCursor[Any] | None:
        while True:
            try:
                owner, cursor = self.idle.pop()
            except IndexError:
                return None
            if owner is engine and not cursor.connection.closed:
                return cursor
            cursor.connection.close()

    @staticmethod
    def _connect() -> psycopg.RawCursor[Any]:
        # Autocommit: the insert is atomic on its own, and BEGIN and COMMIT around it would cost
        # two more round trips. Raw cursors take $n placeholders as they are.
        import psycopg

        connection = psycopg.connect(libpq_url(), autocommit=True, connect_timeout=10)
        connection.execute(_INDEX_SCANS_ONLY)
        return psycopg.RawCursor(connection)

    def run(self, work: Callable[[psycopg.RawCursor[Any]], T]) -> T:
        """Return ``work(cursor)``; connection failures raise DatabaseUnavailable.

        A connection that fails after it sat idle (the server restarted meanwhile, or ended it)
        is replaced and the work runs once more: the first delivery after a restart succeeds.
        A ping before each use would find it too, at the cost of a round trip per request. The
        work must be safe to run twice: every statement here is idempotent or a claim.
        """
        with self.slots:
            return self._run(engine=get_engine(), work=work)

    def _run(self, engine: Engine, work: Callable[[psycopg.RawCursor[Any]], T]) -> T:
        # Imported here, not at the top: only the web's writes on PostgreSQL come here, and
        # loading psycopg took a third of a read command's start-up on SQLite.
        import psycopg

        cursor = self._take_idle(engine)
        try:
            if cursor is not None:
                try:
                    return work(cursor)
                except psycopg.OperationalError:
                    cursor.connection.close()
                    # The other idle connections most likely went the same way.
                    self.close()
            cursor = self._connect()
            return work(cursor)
        except psycopg.OperationalError as error:
            if cursor is not None:
                cursor.connection.close()
            raise DatabaseUnavailable(str(error).strip().splitlines()[0]) from error
        finally:
            if cursor is not None and not cursor.connection.closed:
                self.idle.append((engine, cursor))

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                _, cursor = self.idle.pop()
            except IndexError:
                return
            cursor.connection.close()


# The insert takes a fraction of a millisecond of the database: a few connections keep a
# worker's requests from queueing behind one another's round trips.
_connections = _Connections(limit=4)
atexit.register(_connections.close)


def _record_on_postgresql(delivery: dict[str, Any], only_while_waiting: bool) -> tuple[int, bool]:
    key = (delivery["source"], delivery["dedupe_key"])
    values = [delivery[name] for name in ("source", "kind", "dedupe_key", "body")]
    # The headers go as JSON text, which the column reads as jsonb: orjson writes them in a
    # fraction of the time psycopg's Jsonb adapter takes through json.dumps.
    values += [orjson.dumps(delivery["headers"]).decode(), delivery["status"], delivery["last_error"]]
    values.append(delivery["run_id"])

    def record(cursor: psycopg.RawCursor[Any]) -> tuple[int, bool]:
        # Loops only while a concurrent identical delivery takes the key over in between.
        while True:
            inserted = cursor.execute(_INSERT_SQL, values).fetchone()
            if inserted is not None:
                return inserted[0], True
            superseding = (*key, _superseded(delivery["status"]))
            if only_while_waiting and cursor.execute(_SUPERSEDE_SQL, superseding).fetchone() is not None:
                continue
            existing = cursor.execute(_EXISTING_SQL, key).fetchone()
            if existing is not None:
                return existing[0], False

    return _connections.run(record)


def _record_on_sqlite(delivery: dict[str, Any], only_while_waiting: bool) -> tuple[int, bool]:
    now = utcnow()
    table = inbox_events
    same_key = (table.c.source == delivery["source"]) & (table.c.dedupe_key == delivery["dedupe_key"])
    with connect() as connection:
        row = {**delivery, "received_at": now, "attempts": 0, "next_attempt_at": now}
        new_id = connection.execute(_SQLITE_INSERT, row).scalar()
        if new_id is None and only_while_waiting:
            superseded = connection.execute(
                update(table)
                .where(same_key, table.c.status.in_(_superseded(delivery["status"])))
                .values(dedupe_key=table.c.dedupe_key + "@" + table.c.id.cast(String))
            ).rowcount
            if superseded:
                new_id = connection.execute(_SQLITE_INSERT, row).scalar()
        if new_id is not None:
            return new_id, True
        return connection.execute(select(table.c.id).where(same_key)).scalar_one(), False


def record_delivery(
    source: str,
    kind: str,
    dedupe_key: str,
    body: bytes,
    headers: dict[str, Any],
    status: str = "pending",
    last_error: str | None = None,
    only_while_waiting: bool = False,
    run_id: str | None = None,
) -> tuple[int, bool]:
    """Commit one delivery; return its id and whether it is new (False: a duplicate).

    ``run_id``: the run the event is about, if known; a claim keeps a run's events to one
    worker at a time.

    With ``only_while_waiting``, a delivery is a duplicate of one with the same key only while
    that one waits for its handler (pending, or failed and to be retried), or when both are
    invalid; once it is processing, done, ignored or dead, or refused as invalid where this one is
    valid, this one is stored anew.
    """
    if status not in INBOX_STATUSES:
        raise ValueError(f"unknown inbox status {status!r}")
    delivery = {
        "source": source,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "body": body,
        "headers": headers,
        "status": status,
        "last_error": last_error,
        "run_id": run_id,
    }
    record = _record_on_postgresql if get_engine().dialect.name == "postgresql" else _record_on_sqlite
    return record(delivery, only_while_waiting)


def refusal(event_id: int) -> str | None:
    """Return the error recorded when the web refused this delivery as invalid, else None."""
    table = inbox_events
    with connect(begin=False) as connection:
        row = connection.execute(
            select(table.c.kind, table.c.status, table.c.last_error).where(table.c.id == event_id)
        ).first()
    if row is None or row.kind != "invalid" or row.status != "invalid":
        return None
    return row.last_error or ""


def claim(limit: int, lease: timedelta = timedelta(minutes=5)) -> list[Delivery]:
    """Claim up to ``limit`` due events for this worker, oldest first.

    PostgreSQL skips rows other workers hold (SKIP LOCKED); an event whose claim is
    older than ``lease`` (its worker died, and stopped renewing it) is claimed again. The
    events of a run that another claim still holds an event of wait for it to finish: their
    worker would only wait on the run's lock, and a run's events arriving together made two
    workers take turns, each waiting out the other's whole batch.
    """
    on = _claim_on_postgresql if get_engine().dialect.name == "postgresql" else _claim_on_sqlite
    return sorted(on(limit, utcnow(), lease), key=lambda d: d.id)


def _claim_on_postgresql(limit: int, now: datetime, lease: timedelta) -> list[Delivery]:
    # In binary: as text, each body would travel hex-encoded, twice its size, and decoding it
    # cost the worker more instructions than validating it.
    rows = _connections.run(partial(_claim_rows, now=now, lease=lease, limit=limit))
    return [Delivery(*row) for row in rows]


def _claim_rows(cursor: psycopg.RawCursor[Any], now: datetime, lease: timedelta, limit: int) -> list[Any]:
    # The claim's commit need not wait for the disk: a claim lost in a crash of the server
    # leaves its events due, to be claimed again.
    with cursor.connection.transaction():
        cursor.execute("SET LOCAL synchronous_commit = off")
        return cursor.execute(_CLAIM_SQL, (now, now - lease, limit), binary=True).fetchall()


def _claim_on_sqlite(limit: int, now: datetime, lease: timedelta) -> list[Delivery]:
    table = inbox_events
    # Spelled out for the planner: the partial index of unfinished events, in id order.
    busy = table.alias("busy")
    due = (
        table.c.status.in_(UNFINISHED)
        & or_(
            and_(table.c.status.in_(RETRYABLE), table.c.next_attempt_at <= now),
            and_(table.c.status == "processing", table.c.claimed_at < now - lease),
        )
        & or_(
            table.c.run_id.is_(None),
            ~exists().where(
                busy.c.run_id == table.c.run_id,
                busy.c.status == "processing",
                busy.c.claimed_at >= now - lease,
            ),
        )
    )
    candidates = (
        select(table.c.id).where(due).order_by(table.c.id).limit(limit).with_for_update(skip_locked=True)
    )
    statement = (
        update(table)
        .where(table.c.id.in_(candidates.scalar_subquery()))
        .values(status="processing", claimed_at=now, attempts=table.c.attempts + 1)
        .returning(*_COLUMNS)
    )
    with connect() as connection:
        return [_delivery(row) for row in connection.execute(statement)]


def renew(event_ids: Iterable[int]) -> None:
    """Renew this worker's claim on events it still processes, so that no other worker takes them."""
    table = inbox_events
    # Rows a batch is finishing are locked by its transaction, and skipped: waiting for them
    # could deadlock with that transaction, and they are done once it commits.
    held = (
        select(table.c.id)
        .where(table.c.id.in_(list(event_ids)), table.c.status == "processing")
        .with_for_update(skip_locked=True)
    )
    with connect() as connection:
        connection.execute(
            update(table).where(table.c.id.in_(held.scalar_subquery())).values(claimed_at=utcnow())
        )


def _finish(ids: Any) -> Any:
    return (
        update(inbox_events)
        .where(ids)
        .values(
            status=bindparam("final_status"),
            last_error=bindparam("error"),
            processed_at=bindparam("finished_at"),
            claimed_at=None,
        )
    )


_BY_IDS = inbox_events.c.id.in_(bindparam("ids", expanding=True))
_WARNINGS = bindparam("warnings", type_=inbox_events.c.warnings.type)
_FINISH = _finish(_BY_IDS)
# The events without warnings keep the statements above, which never write the column.
_FINISH_WARNED = _finish(_BY_IDS).values(warnings=_WARNINGS)


@cache
def _finish_on_postgresql(warned: bool) -> Direct:
    """The finishing statement on PostgreSQL, built on first use: its ARRAY type loads SQLAlchemy's
    PostgreSQL dialect, which a process on SQLite does without."""
    from sqlalchemy.dialects.postgresql import ARRAY

    # One statement text whatever the number of events, where IN would have one per number.
    by_id_array = inbox_events.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    statement = _finish(by_id_array)
    return Direct(statement.values(warnings=_WARNINGS) if warned else statement)


def finish(
    event_ids: Iterable[int], status: str, error: str | None = None, warnings: list[str] | None = None
) -> None:
    """Record the final outcome (done, ignored, invalid or dead) of claimed events, and what
    applying them warned of."""
    ids = list(event_ids)
    if not ids:
        return
    parameters: dict[str, Any] = {"ids": ids, "final_status": status, "error": error, "finished_at": utcnow()}
    if warnings:
        parameters["warnings"] = warnings
    with connect() as connection:
        if connection.dialect.name == "postgresql":
            _finish_on_postgresql(bool(warnings)).execute(connection, parameters)
        else:
            connection.execute(_FINISH_WARNED if warnings else _FINISH, parameters)


def release(event_ids: Iterable[int]) -> None:
    """Hand back claimed events a worker could not finish, for any worker to claim at once."""
    table = inbox_events
    with connect() as connection:
        connection.execute(
            update(table)
            .where(table.c.id.in_(list(event_ids)), table.c.status == "processing")
            .values(status="pending", claimed_at=None)
        )


def retry_later(
    event_id: int, attempts: int, error: str, base_delay: float = 1.0, cap: float = 600.0
) -> None:
    """Schedule a failed event again with exponential backoff and full jitter."""
    delay = random.uniform(0, min(cap, base_delay * 2 ** max(attempts - 1, 0)))
    with connect() as connection:
        connection.execute(
            update(inbox_events)
            .where(inbox_events.c.id == event_id)
            .values(
                status="failed",
                last_error=error,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                claimed_at=None,
            )
        )


def _replay_conditions(
    statuses: Sequence[str],
    source: str | None,
    since: datetime | None,
    until: datetime | None,
    event_ids: Sequence[int],
) -> list[Any]:
    for status in statuses:
        if status not in INBOX_STATUSES:
            raise ValueError(f"unknown inbox status {status!r}; expected one of {', '.join(INBOX_STATUSES)}")
    table = inbox_events
    conditions: list[ColumnElement[bool]] = [table.c.status.in_(list(statuses))]
    if source:
        conditions.append(table.c.source == source)
    if since:
        conditions.append(table.c.received_at >= since)
    if until:
        conditions.append(table.c.received_at < until)
    if event_ids:
        conditions.append(table.c.id.in_(list(event_ids)))
    return conditions


def requeue_ids(
    statuses: Sequence[str] = ("failed", "dead"),
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_ids: Sequence[int] = (),
) -> list[int]:
    """Return the ids of the events a replay would run again, oldest first, without their bodies."""
    conditions = _replay_conditions(statuses, source, since, until, event_ids)
    table = inbox_events
    with connect(begin=False) as connection:
        return list(connection.execute(select(table.c.id).where(*conditions).order_by(table.c.id)).scalars())


def set_status(
    event_id: int,
    status: str,
    error: str | None = None,
    count_attempt: bool = True,
    warnings: list[str] | None = None,
) -> None:
    """Record the outcome of a replayed event and what applying it warned of, counting the attempt."""
    table = inbox_events
    values: dict[str, Any] = {
        "status": status,
        "last_error": error,
        "processed_at": utcnow(),
        "warnings": warnings or None,
    }
    if count_attempt:
        values["attempts"] = table.c.attempts + 1
    with connect() as connection:
        connection.execute(update(table).where(table.c.id == event_id).values(**values))


def get_delivery(event_id: int) -> Delivery | None:
    with connect(begin=False) as connection:
        row = connection.execute(select(*_COLUMNS).where(inbox_events.c.id == event_id)).first()
    return _delivery(row) if row else None


def list_deliveries(status: str | None = None, source: str | None = None, limit: int = 50) -> list[Delivery]:
    """Return the newest deliveries first, optionally of one status and source."""
    table = inbox_events
    statement = select(*_COLUMNS).order_by(table.c.id.desc()).limit(limit)
    if status:
        if status not in INBOX_STATUSES:
            raise ValueError(f"unknown inbox status {status!r}; expected one of {', '.join(INBOX_STATUSES)}")
        statement = statement.where(table.c.status == status)
    if source:
        statement = statement.where(table.c.source == source)
    with connect(begin=False) as connection:
        return [_delivery(row) for row in connection.execute(statement)]


def counts() -> dict[tuple[str, str], int]:
    """Count inbox events by (source, status)."""
    table = inbox_events
    with connect(begin=False) as connection:
        rows = connection.execute(
            select(table.c.source, table.c.status, func.count()).group_by(table.c.source, table.c.status)
        )
        return {(source, status): count for source, status, count in rows}


def oldest_pending_age() -> float:
    """Return how many seconds the oldest unprocessed event has waited (0 when none)."""
    table = inbox_events
    with connect(begin=False) as connection:
        oldest = connection.execute(
            select(func.min(table.c.received_at)).where(table.c.status.in_(UNFINISHED))
        ).scalar()
    return max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0


# What the inbox may forget once it is archived: applied, or with nothing to do. Failed, dead
# and invalid deliveries stay, for a replay after a fix.
ARCHIVABLE = ("done", "ignored")
# One archiver at a time on PostgreSQL. The single-key form: its keys never meet the run
# creation locks' two-key ones.
_ARCHIVING_LOCK = 0x7472646261726368


def _archivable(table: Any, before: datetime) -> Any:
    # Bounded by the first id received at or after ``before``, found by walking the primary key
    # from the oldest row: without it, looking for old rows when there are none would read the
    # whole inbox (no index on received_at: the web's every insert would pay for it). Ids are
    # handed out as deliveries arrive, so the few received just before that one, in the same
    # milliseconds, wait for the next turn.
    first_young = (
        select(table.c.id)
        .where(table.c.received_at >= before)
        .order_by(table.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return and_(
        table.c.status.in_(ARCHIVABLE),
        table.c.received_at < before,
        table.c.id < func.coalesce(first_young, select(func.max(table.c.id) + 1).scalar_subquery()),
    )


def archive_batch(
    before: datetime, limit: int, write: Callable[[list[Delivery]], None], wait: bool = False
) -> list[Delivery] | None:
    """Hand the oldest done and ignored deliveries received before ``before`` to ``write``, then delete them.

    One transaction: a ``write`` that raises deletes nothing. Returns the deliveries archived, or
    None when another archiver holds the archiving lock (PostgreSQL) and ``wait`` is false.
    """
    table = inbox_events
    with connect() as connection:
        if connection.dialect.name == "postgresql":
            if wait:
                connection.execute(select(func.pg_advisory_xact_lock(_ARCHIVING_LOCK)))
            elif not connection.execute(select(func.pg_try_advisory_xact_lock(_ARCHIVING_LOCK))).scalar():
                return None
        # SKIP LOCKED: a row a replay is rewriting now waits for the next batch.
        rows = connection.execute(
            select(*_COLUMNS)
            .where(_archivable(table, before))
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deliveries = [_delivery(row) for row in rows]
        if not deliveries:
            return []
        write(deliveries)
        connection.execute(delete(table).where(table.c.id.in_([d.id for d in deliveries])))
    return deliveries


def still_held(event_ids: Iterable[int]) -> set[int]:
    """Return which of these deliveries the inbox holds, once no archiver is between its write and its commit."""
    table = inbox_events
    ids = list(event_ids)
    with connect() as connection:
        # SQLite: this transaction began by taking the one write lock, as every archiver's does.
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_ARCHIVING_LOCK)))
        return set(connection.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())


@dataclass(frozen=True)
class InboxStatistics:
    """What the inbox holds: counts by status and source, the oldest of each status, its size."""

    by_status: dict[str, int]
    by_source: dict[str, int]
    oldest: dict[str, datetime]
    archivable: int
    archivable_before: datetime
    total_bytes: int | None


def statistics(archivable_before: datetime) -> InboxStatistics:
    """Count the inbox by status and source, and what is archivable before ``archivable_before``."""
    table = inbox_events
    with connect(begin=False) as connection:
        by_status = connection.execute(
            select(table.c.status, func.count(), func.min(table.c.received_at)).group_by(table.c.status)
        ).all()
        by_source = connection.execute(select(table.c.source, func.count()).group_by(table.c.source)).all()
        archivable = connection.execute(
            select(func.count()).where(_archivable(table, archivable_before))
        ).scalar_one()
        total_bytes = None
        if connection.dialect.name == "postgresql":
            # The table, its indexes and its TOAST table (the bodies), read from the catalog.
            total_bytes = connection.execute(
                select(func.pg_total_relation_size(func.to_regclass(table.name)))
            ).scalar_one()
    return InboxStatistics(
        by_status={status: count for status, count, _ in by_status},
        by_source={source: count for source, count in by_source},
        oldest={status: oldest for status, _, oldest in by_status},
        archivable=archivable,
        archivable_before=archivable_before,
        total_bytes=total_bytes,
    )


def page_events(
    statuses: Sequence[str] = ("failed", "dead"),
    source: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Return deliveries of these statuses, newest first, older than the event id ``before``."""
    for status in statuses:
        if status not in INBOX_STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(INBOX_STATUSES)}")
    table = inbox_events
    statement = select(*_COLUMNS).where(table.c.status.in_(list(statuses))).order_by(table.c.id.desc())
    if source:
        statement = statement.where(table.c.source == source)
    if before is not None:
        statement = statement.where(table.c.id < before)
    with replica_connection() as connection:
        return [_delivery(row) for row in connection.execute(statement.limit(limit))]
