"""Filters and orderings over runs, from user-supplied field names to safe SQL.

Filters come as a mapping of field to value or ``{operator: value}``, or as a filter string
(store/filters.py); fields are those of store/fields.py.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Numeric,
    Select,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    true,
)

from store import extract
from store.database import read_connection
from store.fields import DOCUMENTS as DOCUMENTS
from store.fields import INTEGER_RANGES, Field, JsonAccess, is_number, parse_time
from store.fields import SCALAR_COLUMNS as SCALAR_COLUMNS
from store.fields import SCALAR_TYPES as SCALAR_TYPES
from store.fields import resolve as resolve
from store.filters import compile_filter, matching_run_ids, objective_join, parse_field, select_field
from store.schema import OBJECTIVE_FIELDS, RUN_COLUMNS, UTCDateTime, run_objectives, training_runs

_RUNS = training_runs
_OBJECTIVES = run_objectives.c
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "min", "max", "in", "like")


def _coerce_for_column(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field.column.type, UTCDateTime):
        return parse_time(value, field.name)
    python_type = field.column.type.python_type
    if python_type in (int, float):
        if isinstance(value, str):
            try:
                value = (
                    float(value)
                    if python_type is float or "." in value or "e" in value.lower()
                    else int(value)
                )
            except ValueError:
                pass
        if not is_number(value):
            raise ValueError(f"{field.name} compares with numbers, not {value!r}")
        limit = INTEGER_RANGES.get(type(field.column.type))
        if limit is not None and isinstance(value, int) and not -limit <= value < limit:
            raise ValueError(f"{value} is out of the range of {field.name} ({-limit} to {limit - 1})")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{field.name} compares with strings, not {value!r}")
    if field.name == "status":
        return extract.normalize_status(value)
    return value


_COMPARISONS: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "eq": lambda x, v: x == v,
    "ne": lambda x, v: x != v,
    "gt": lambda x, v: x > v,
    "gte": lambda x, v: x >= v,
    "min": lambda x, v: x >= v,
    "lt": lambda x, v: x < v,
    "lte": lambda x, v: x <= v,
    "max": lambda x, v: x <= v,
}


def _column_condition(field: Field, op: str, value: Any) -> ColumnElement[bool]:
    column = field.column
    if op == "in":
        values = [_coerce_for_column(field, v) for v in _sequence(field, value)]
        return column.in_(values) if values else false()
    if op == "like":
        if not isinstance(value, str):
            raise ValueError(f"like on {field.name} needs a string pattern")
        return column.like(value)
    value = _coerce_for_column(field, value)
    if value is None:
        if op == "eq":
            return column.is_(None)
        if op == "ne":
            return column.is_not(None)
        raise ValueError(f"{op} on {field.name} needs a value, not null")
    if op == "ne":
        return or_(column != value, column.is_(None))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name} cannot be compared with {value}")
    return _COMPARISONS[op](column, value)


def _json_condition(field: Field, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    access = JsonAccess(field, dialect)
    if op == "in":
        values = _sequence(field, value)
        return or_(*[_json_condition(field, "eq", v, dialect) for v in values]) if values else false()
    if op == "like":
        if not isinstance(value, str):
            raise ValueError(f"like on {field.name} needs a string pattern")
        return access.text().like(value)
    if value is None:
        if op == "eq":
            return access.is_null()
        if op == "ne":
            return ~access.is_null()
        raise ValueError(f"{op} on {field.name} needs a value, not null")
    if isinstance(value, bool):
        if op not in ("eq", "ne"):
            raise ValueError(f"{op} on {field.name} cannot compare booleans")
        matches = access.boolean_is(value)
        return matches if op == "eq" else ~matches
    if is_number(value):
        if not math.isfinite(value):
            raise ValueError(f"{field.name} cannot be compared with {value}")
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            # Bound as a bigint by default, which refuses it. SQLite's JSON numbers past 64 bits
            # are doubles anyway; PostgreSQL compares as numeric, exactly.
            value = float(value) if dialect == "sqlite" else literal(value, Numeric())
        expression = access.number()
    elif isinstance(value, str):
        expression = access.text()
    else:
        raise ValueError(f"{field.name} compares with a number, string, boolean or null, not {value!r}")
    if op == "ne":
        return or_(expression != value, expression.is_(None))
    return _COMPARISONS[op](expression, value)


def _sequence(field: Field, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"'in' on {field.name} needs a list of values")
    return list(value)


def condition(name: str, spec: Any, dialect: str) -> ColumnElement[bool]:
    """Build the condition for one ``filters`` entry."""
    field = resolve(name)
    operations = spec.items() if isinstance(spec, Mapping) else [("eq", spec)]
    clauses = []
    for op, value in operations:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} on {name!r}; expected one of {', '.join(OPERATORS)}")
        if field.is_json:
            clauses.append(_json_condition(field, op, value, dialect))
        else:
            clauses.append(_column_condition(field, op, value))
    return and_(true(), *clauses)


def conditions_of(filters: Mapping[str, Any] | None, dialect: str) -> list[ColumnElement[bool]]:
    """Build the conditions for a ``filters`` mapping."""
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        raise ValueError("filters must be a mapping of field to value or {operator: value}")
    return [condition(name, spec, dialect) for name, spec in filters.items()]


def ordering(order_by: str | Sequence[str] | None, dialect: str) -> list[ColumnElement[Any]]:
    """Build ORDER BY clauses (``-field`` descending), with run_id as the tiebreak."""
    names = [order_by] if isinstance(order_by, str) else list(order_by or [])
    clauses: list[ColumnElement[Any]] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.lstrip("-"):
            raise ValueError(f"invalid order_by {raw!r}")
        descending = raw.startswith("-")
        field = resolve(raw.lstrip("-"))
        expression = JsonAccess(field, dialect).sortable() if field.is_json else field.column
        ordered = expression.desc() if descending else expression.asc()
        # NULLS LAST only where NULLs can be: on a NOT NULL column it would keep PostgreSQL
        # from reading its btree index backwards (created_at DESC is the default order).
        nullable = field.is_json or field.column.nullable
        clauses.append(ordered.nulls_last() if nullable else ordered)
    clauses.append(_RUNS.c.run_id.asc())
    return clauses


def get_run(run_id: str) -> dict[str, Any] | None:
    """Return one run with all its fields and its objectives, or None."""
    with read_connection() as connection:
        return run_with_objectives(connection, run_id)


def run_with_objectives(connection: Connection, run_id: str) -> dict[str, Any] | None:
    """Return one run with all its fields and its objectives, or None, read on ``connection``."""
    run = connection.execute(select(_RUNS).where(_RUNS.c.run_id == run_id)).first()
    if run is None:
        return None
    result = dict(run._mapping)
    objectives = select(_OBJECTIVES.run_id, *[_OBJECTIVES[name] for name in OBJECTIVE_FIELDS])
    result["objectives"] = [
        dict(objective._mapping)
        for objective in connection.execute(
            objectives.where(_OBJECTIVES.run_id == run_id).order_by(_OBJECTIVES.objective_name)
        )
    ]
    return result


def check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer or None, not {limit!r}")
    return limit


def query_runs(
    filters: Mapping[str, Any] | None = None,
    order_by: str | Sequence[str] | None = "-created_at",
    limit: int | None = 100,
    columns: Sequence[str] | None = None,
    where: str | None = None,
) -> list[dict[str, Any]]:
    """Return runs matching every filter and the ``where`` filter string, as dicts of their
    fields: all of them, or ``columns`` (typed columns, JSON paths such as ``summary.train/loss``
    and ``objective.NAME.STAT``, as the filter language names them) under the names given."""
    limit = check_limit(limit)
    with read_connection() as connection:
        dialect = connection.dialect.name
        names, statement = _selection(columns, dialect)
        statement = (
            statement.where(*conditions_of(filters, dialect), compile_filter(where, dialect))
            .order_by(*ordering(order_by, dialect))
            .limit(limit)
        )
        with _collector_paused():
            rows = connection.execute(statement)
            return [dict(zip(names, row, strict=True)) for row in rows]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while runs are read into dicts.

    Their documents are tens of thousands of fresh dicts and lists, none in a cycle; the collector
    would traverse them again and again as they pile up: a third of reading 3,600 whole runs
    (bench/query.py). Pausing is process-wide, and short: the collector resumes at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _selection(columns: Sequence[str] | None, dialect: str) -> tuple[list[str], Select[Any]]:
    """Return the names of the fields to read and the SELECT of them, from ``training_runs`` and
    an outer join of ``run_objectives`` per objective named."""
    if columns is None:
        names = list(RUN_COLUMNS)
    elif isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise ValueError(f"columns must be a non-empty list of field names, not {columns!r}")
    else:
        names = list(dict.fromkeys(columns))
    objectives: dict[str, FromClause] = {}
    fields = [
        _RUNS.c[name] if name in RUN_COLUMNS else select_field(parse_field(name), dialect, objectives)
        for name in names
    ]
    source: Any = _RUNS
    for name, objective in objectives.items():
        source = source.outerjoin(objective, objective_join(name, objective))
    return names, select(*fields).select_from(source)


def iter_runs(
    filters: Mapping[str, Any] | None = None,
    order_by: str | Sequence[str] | None = "run_id",
    batch_size: int = 1000,
    where: str | None = None,
) -> Any:
    """Yield every run matching the filters and ``where`` as a dict, reading the database in batches."""
    with read_connection() as connection:
        dialect = connection.dialect.name
        names, statement = _selection(None, dialect)
        statement = (
            statement.where(*conditions_of(filters, dialect), compile_filter(where, dialect))
            .order_by(*ordering(order_by, dialect))
            .execution_options(yield_per=batch_size)
        )
        for row in connection.execute(statement):
            yield dict(zip(names, row, strict=True))


def get_stats(where: str | None = None, include_unknown: bool = False) -> dict[str, Any]:
    """Return counts by status and gradient method, crash rates and the time range of the runs the
    ``where`` filter string matches (all runs without one).

    Runs of status ``unknown`` (never launched, as far as the database knows) count only with
    ``include_unknown``.
    """
    counted = [] if include_unknown else [_RUNS.c.status != extract.UNKNOWN]
    with read_connection() as connection:
        dialect = connection.dialect.name
        # One scan of the runs for every count: by method and status, with each group's time range.
        groups = connection.execute(
            select(
                _RUNS.c.gradient_method,
                _RUNS.c.status,
                func.count(),
                func.min(_RUNS.c.created_at),
                func.max(_RUNS.c.created_at),
            )
            .where(compile_filter(where, dialect), *counted)
            .group_by(_RUNS.c.gradient_method, _RUNS.c.status)
        ).all()
        matching = matching_run_ids(where, dialect)
        objective_rows = [] if include_unknown else [_OBJECTIVES.status.is_distinct_from(extract.UNKNOWN)]
        if matching is None:
            num_objectives = connection.scalar(_count_objective_names(objective_rows))
        else:
            num_objectives = connection.scalar(
                select(func.count(func.distinct(_OBJECTIVES.objective_name))).where(
                    _OBJECTIVES.run_id.in_(matching), *objective_rows
                )
            )
    by_status: dict[str, int] = {}
    by_method: dict[str | None, int] = {}
    crashed: dict[str | None, int] = {}
    for method, status, count, _, _ in groups:
        by_status[status] = by_status.get(status, 0) + count
        by_method[method] = by_method.get(method, 0) + count
        crashed[method] = crashed.get(method, 0) + (count if status == "crashed" else 0)
    total = sum(by_status.values())
    return {
        "total_runs": total,
        "runs_by_status": {s: by_status[s] for s in extract.STATUSES if s in by_status},
        "runs_by_gradient_method": by_method,
        "crash_rate_by_gradient_method": {
            method: crashed[method] / runs for method, runs in by_method.items()
        },
        "num_objectives": num_objectives or 0,
        "crash_rate": (by_status.get("crashed", 0) / total) if total else 0.0,
        "oldest_run_at": min((group[3] for group in groups), default=None),
        "newest_run_at": max((group[4] for group in groups), default=None),
    }


def _count_objective_names(counted: list[Any]) -> Select[int]:
    """Count the distinct objective names by skipping from one to the next along an index that
    starts with the name: a probe per name, where COUNT(DISTINCT) read every objective row
    (360,000 at 100,000 runs: most of get_stats' time)."""
    first = (
        select(func.min(_OBJECTIVES.objective_name).label("name"))
        .where(*counted)
        .cte("names", recursive=True)
    )
    previous = first.alias("previous")
    following = select(
        select(func.min(_OBJECTIVES.objective_name))
        .where(_OBJECTIVES.objective_name > previous.c.name, *counted)
        .scalar_subquery()
    ).where(previous.c.name.is_not(None))
    names = first.union_all(following)
    return select(func.count(names.c.name))
