"""Reading runs' metric histories (store/history.py keeps them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Integer, bindparam, func, select

from store.database import replica_connection
from store.filters import compile_filter
from store.history import ABSENT, column_size, decode_column, decode_steps, decode_times
from store.schema import run_histories, run_history_chunks, training_runs
from store.stalled import is_stalled


def _check_keys(keys: Any) -> list[str] | None:
    if keys is None:
        return None
    if isinstance(keys, str) or not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):
        raise ValueError("keys must be a list of strings")
    return list(dict.fromkeys(keys))


def _check_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}")
    return value


def thin_evenly(count: int, limit: int | None) -> list[int] | None:
    """Return the indexes of ``limit`` of ``count`` points spread evenly, the first and last
    among them; None when all are wanted."""
    if limit is None or count <= limit:
        return None
    if limit == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def _series(column: list[Any]) -> list[Any]:
    """Return a column with None where a point has no value."""
    return [None if value is ABSENT else value for value in column] if ABSENT in column else column


_RUNS = training_runs
_HISTORIES = run_histories
_CHUNKS = run_history_chunks
_POINTS = _CHUNKS.c.points


# A live run page polls get_run_history every second or two: its statements are built once, and
# run on a Core connection, no ORM session.
_RUN_AND_HISTORY = (
    select(
        _RUNS.c.status,
        _RUNS.c.updated_at,
        _RUNS.c.created_at,
        _HISTORIES.c["keys"].label("history_keys"),
        _HISTORIES.c.last_step,
    )
    .outerjoin(_HISTORIES, _HISTORIES.c.run_id == _RUNS.c.run_id)
    .where(_RUNS.c.run_id == bindparam("run_id"))
)
# A chunk's data up to the end of the column of key ``through`` (store/history.py): steps, times
# and the first columns. One slice: PostgreSQL reads its TOAST pieces in one index scan, where a
# slice per part would scan once per part.
_THROUGH_KEY = func.substr(
    _CHUNKS.c.data,
    1,
    16 * _POINTS + (bindparam("through", type_=Integer) + 1) * (2 * ((_POINTS + 7) // 8) + 8 * _POINTS),
)
_CHUNKS_OF_RUN = (
    select(_POINTS, _THROUGH_KEY, _CHUNKS.c.extras)
    .where(_CHUNKS.c.run_id == bindparam("run_id"))
    .order_by(_CHUNKS.c.start)
)
_CHUNKS_OF_RUN_AFTER = _CHUNKS_OF_RUN.where(
    _CHUNKS.c.start + _CHUNKS.c.width > bindparam("since", type_=BigInteger)
)


def get_run_history(
    run_id: str,
    keys: list[str] | None = None,
    since_step: int | None = None,
    max_points: int | None = None,
) -> dict[str, Any] | None:
    """Return a run's history: its steps ascending and one series per key (None where a key has no
    value at a step), after ``since_step`` when given, at most ``max_points`` spread evenly, with
    the run's status and whether it is stalled; None for an unknown run."""
    wanted = _check_keys(keys)
    since = _check_int("since_step", since_step, -(2**63))
    limit = _check_int("max_points", max_points, 1)
    with replica_connection() as connection:
        row = connection.execute(_RUN_AND_HISTORY, {"run_id": run_id}).first()
        if row is None:
            return None
        stored = list(row.history_keys or [])
        names = stored if wanted is None else wanted
        index = {name: i for i, name in enumerate(stored)}
        indexes = sorted({index[name] for name in names if name in index})
        steps: list[int] = []
        times: list[float] = []
        columns: dict[int, list[Any]] = {i: [] for i in indexes}
        # A poll past the latest step has nothing to read.
        if row.history_keys is not None and (since is None or since < row.last_step):
            statement = _CHUNKS_OF_RUN if since is None else _CHUNKS_OF_RUN_AFTER
            parameters = {"run_id": run_id, "through": max(indexes, default=-1), "since": since}
            for points, data, extras in connection.execute(statement, parameters):
                chunk_steps = decode_steps(data, points)
                skip = 0
                if since is not None:
                    skip = next((i for i, s in enumerate(chunk_steps) if s > since), points)
                steps += chunk_steps[skip:]
                times += decode_times(data, points, 8 * points)[skip:]
                size = column_size(points)
                for i in indexes:
                    column = decode_column(data, points, (extras or {}).get(str(i)), 16 * points + i * size)
                    columns[i] += column[skip:] if column is not None else [ABSENT] * (points - skip)
    chosen = thin_evenly(len(steps), limit)
    if chosen is not None:
        steps = [steps[i] for i in chosen]
        times = [times[i] for i in chosen]
        columns = {key: [column[i] for i in chosen] for key, column in columns.items()}
    series = {name: _series(columns[index[name]]) if name in index else [None] * len(steps) for name in names}
    return {
        "run_id": run_id,
        "steps": steps,
        "times": [t if t == t else None for t in times],
        "series": series,
        "last_step": None if row.last_step is None else int(row.last_step),
        # A live page follows the run's status from its polls, without reading the whole run.
        "status": row.status,
        "stalled": is_stalled(row._asdict()),
    }


_LIVE_STATES = (
    select(_RUNS.c.run_id, _RUNS.c.status, _RUNS.c.updated_at, _RUNS.c.created_at, _HISTORIES.c.last_step)
    .outerjoin(_HISTORIES, _HISTORIES.c.run_id == _RUNS.c.run_id)
    .where(_RUNS.c.run_id.in_(bindparam("run_ids", expanding=True)))
)
# Run ids per statement: within SQLite's oldest limit of bound parameters.
_LIVE_STATES_CHUNK = 500


class LiveState(NamedTuple):
    """What a page following a run shows of it besides its points."""

    status: str
    last_step: int | None
    stalled: bool


def get_live_states(run_ids: Sequence[str]) -> dict[str, LiveState]:
    """Return, for each of these runs that exists, what a page following it watches: its status,
    its history's last step and whether it is stalled."""
    states = {}
    with replica_connection() as connection:
        # Each web process asks this twice a second: one round trip, no BEGIN and ROLLBACK.
        connection.execution_options(isolation_level="AUTOCOMMIT")
        for start in range(0, len(run_ids), _LIVE_STATES_CHUNK):
            chunk = list(run_ids[start : start + _LIVE_STATES_CHUNK])
            for row in connection.execute(_LIVE_STATES, {"run_ids": chunk}):
                states[row.run_id] = LiveState(row.status, row.last_step, is_stalled(row._asdict()))
    return states


def get_history(filter: str | None, key: str, max_runs: int = 20) -> list[dict[str, Any]]:
    """Return one key's history in each of the ``max_runs`` most recently created runs the filter
    matches: ``{"run_id", "run_name", "gradient_method", "status", "steps", "values"}``, the steps
    where the run has a value of the key."""
    if not isinstance(key, str):
        raise ValueError("key must be a string")
    limit = _check_int("max_runs", max_runs, 1)
    with replica_connection() as connection:
        dialect = connection.dialect.name
        runs = connection.execute(
            select(
                _RUNS.c.run_id,
                _RUNS.c.run_name,
                _RUNS.c.gradient_method,
                _RUNS.c.status,
                _HISTORIES.c["keys"].label("history_keys"),
            )
            .outerjoin(_HISTORIES, _HISTORIES.c.run_id == _RUNS.c.run_id)
            .where(compile_filter(filter, dialect))
            .order_by(_RUNS.c.created_at.desc(), _RUNS.c.run_id)
            .limit(limit)
        ).all()
        # The key's place in each run's chunks; most runs log their keys in the same order.
        by_position: dict[int, list[str]] = {}
        for run in runs:
            if run.history_keys and key in run.history_keys:
                by_position.setdefault(run.history_keys.index(key), []).append(run.run_id)
        curves: dict[str, tuple[list[int], list[Any]]] = {}
        for position, run_ids in by_position.items():
            rows = connection.execute(
                select(_CHUNKS.c.run_id, _POINTS, _THROUGH_KEY, _CHUNKS.c.extras)
                .where(_CHUNKS.c.run_id.in_(run_ids))
                .order_by(_CHUNKS.c.run_id, _CHUNKS.c.start),
                {"through": position},
            )
            for run_id, points, data, extras in rows:
                column = decode_column(
                    data,
                    points,
                    (extras or {}).get(str(position)),
                    16 * points + position * column_size(points),
                )
                if column is None:
                    continue
                steps, values = curves.setdefault(run_id, ([], []))
                chunk_steps = decode_steps(data, points)
                if ABSENT in column:
                    kept = [i for i, value in enumerate(column) if value is not ABSENT]
                    steps += [chunk_steps[i] for i in kept]
                    values += [column[i] for i in kept]
                else:
                    steps += chunk_steps
                    values += column
    return [
        {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "gradient_method": run.gradient_method,
            "status": run.status,
            "steps": curves.get(run.run_id, ([], []))[0],
            "values": curves.get(run.run_id, ([], []))[1],
        }
        for run in runs
    ]
