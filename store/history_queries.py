"""Reading runs' metric histories (store/history.py keeps them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from store.database import replica_transaction
from store.filters import compile_filter
from store.history import ABSENT, decode_chunk
from store.models import RunHistory, RunHistoryChunk, TrainingRun


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


def _value(value: Any) -> Any:
    return None if value is ABSENT else value


def get_run_history(
    run_id: str,
    keys: list[str] | None = None,
    since_step: int | None = None,
    max_points: int | None = None,
) -> dict[str, Any] | None:
    """Return a run's history: its steps ascending and one series per key (None where a key has no
    value at a step), after ``since_step`` when given, at most ``max_points`` spread evenly; None
    for an unknown run."""
    wanted = _check_keys(keys)
    since = _check_int("since_step", since_step, -(2**63))
    limit = _check_int("max_points", max_points, 1)
    histories, chunks = RunHistory.__table__, RunHistoryChunk.__table__
    with replica_transaction() as session:
        row = session.execute(
            select(TrainingRun.run_id, histories.c["keys"].label("history_keys"), histories.c.last_step)
            .outerjoin(histories, histories.c.run_id == TrainingRun.run_id)
            .where(TrainingRun.run_id == run_id)
        ).first()
        if row is None:
            return None
        stored = list(row.history_keys or [])
        names = stored if wanted is None else wanted
        index = {name: i for i, name in enumerate(stored)}
        indexes = sorted({index[name] for name in names if name in index})
        steps: list[int] = []
        times: list[float] = []
        columns: dict[int, list[Any]] = {i: [] for i in indexes}
        if row.history_keys is not None:
            statement = select(chunks.c.data).where(chunks.c.run_id == run_id).order_by(chunks.c.start)
            if since is not None:
                statement = statement.where(chunks.c.start + chunks.c.width > since)
            for data in session.scalars(statement):
                decoded = decode_chunk(data, indexes)
                skip = 0
                if since is not None:
                    skip = next((i for i, s in enumerate(decoded.steps) if s > since), len(decoded.steps))
                steps += decoded.steps[skip:]
                times += decoded.times[skip:]
                for i in indexes:
                    column = decoded.columns.get(i)
                    columns[i] += (
                        column[skip:] if column is not None else [ABSENT] * (len(decoded.steps) - skip)
                    )
    chosen = thin_evenly(len(steps), limit)
    if chosen is not None:
        steps = [steps[i] for i in chosen]
        times = [times[i] for i in chosen]
        columns = {key: [column[i] for i in chosen] for key, column in columns.items()}
    series = {
        name: [_value(v) for v in columns[index[name]]] if name in index else [None] * len(steps)
        for name in names
    }
    return {
        "run_id": run_id,
        "steps": steps,
        "times": [t if t == t else None for t in times],
        "series": series,
        "last_step": None if row.last_step is None else int(row.last_step),
    }


def get_history(filter: str | None, key: str, max_runs: int = 20) -> list[dict[str, Any]]:
    """Return one key's history in each of the ``max_runs`` most recently created runs the filter
    matches: ``{"run_id", "run_name", "gradient_method", "status", "steps", "values"}``, the steps
    where the run has a value of the key."""
    if not isinstance(key, str):
        raise ValueError("key must be a string")
    limit = _check_int("max_runs", max_runs, 1)
    histories, chunks = RunHistory.__table__, RunHistoryChunk.__table__
    with replica_transaction() as session:
        dialect = session.get_bind().dialect.name
        runs = session.execute(
            select(
                TrainingRun.run_id,
                TrainingRun.run_name,
                TrainingRun.gradient_method,
                TrainingRun.status,
                histories.c["keys"].label("history_keys"),
            )
            .outerjoin(histories, histories.c.run_id == TrainingRun.run_id)
            .where(compile_filter(filter, dialect))
            .order_by(TrainingRun.created_at.desc(), TrainingRun.run_id)
            .limit(limit)
        ).all()
        positions = {
            run.run_id: run.history_keys.index(key)
            for run in runs
            if run.history_keys and key in run.history_keys
        }
        curves: dict[str, tuple[list[int], list[Any]]] = {run_id: ([], []) for run_id in positions}
        if positions:
            rows = session.execute(
                select(chunks.c.run_id, chunks.c.data)
                .where(chunks.c.run_id.in_(list(positions)))
                .order_by(chunks.c.run_id, chunks.c.start)
            )
            for run_id, data in rows:
                position = positions[run_id]
                decoded = decode_chunk(data, [position])
                column = decoded.columns.get(position)
                if column is None:
                    continue
                steps, values = curves[run_id]
                for step, value in zip(decoded.steps, column, strict=True):
                    if value is not ABSENT:
                        steps.append(step)
                        values.append(value)
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
