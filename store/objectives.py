"""The objectives API: per-objective configuration, final values and comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CursorResult, and_, case, delete, func, select
from sqlalchemy.orm import aliased

from store import extract
from store.database import read_transaction, transaction
from store.filters import compile_filter, matching_run_ids
from store.models import RunObjective, TrainingRun
from store.query import SCALAR_COLUMNS, check_limit
from store.runs import RunState, objective_to_dict, set_objective_metrics, upsert_config_objectives

THRESHOLD_OPERATORS = {
    "min": lambda x, v: x >= v,
    "gte": lambda x, v: x >= v,
    "max": lambda x, v: x <= v,
    "lte": lambda x, v: x <= v,
    "gt": lambda x, v: x > v,
    "lt": lambda x, v: x < v,
}
RESULT_COLUMNS = tuple(c for c in SCALAR_COLUMNS if c not in ("error_message",))


def _metric_column(table: Any, metric: str) -> Any:
    if metric not in extract.OBJECTIVE_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(extract.OBJECTIVE_COLUMNS)}")
    return getattr(table, metric)


def _check_name(objective_name: Any) -> str:
    if not isinstance(objective_name, str) or not objective_name:
        raise ValueError("objective_name must be a non-empty string")
    if len(objective_name) > extract.OBJECTIVE_NAME_LENGTH:
        raise ValueError(f"objective_name is longer than {extract.OBJECTIVE_NAME_LENGTH} characters")
    return objective_name


def insert_objective(
    run_id: str,
    objective_name: str,
    objective_alias: str | None = None,
    uniprot: str | None = None,
    weight: float | None = None,
    direction: str | None = None,
) -> bool:
    """Insert or update one objective of a run; return whether anything changed."""
    _check_name(objective_name)
    if direction is not None and direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
    row = {
        "objective_name": objective_name,
        "objective_alias": objective_alias,
        "uniprot": uniprot,
        "direction": direction,
        "weight": extract.as_finite_float(weight) if weight is not None else None,
    }
    for field in ("objective_alias", "uniprot"):
        row[field] = _objective_text(field, row[field])
    with transaction() as session, RunState(session, run_id) as state:
        upsert_config_objectives(state, [row], kept_in=None)
    return state.changed


def _objective_text(field: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    return extract.text_column(RunObjective.__table__.c[field])(value)


def update_objective_metric(run_id: str, objective_name: str, metric_type: str, value: Any) -> bool:
    """Set one final statistic (``raw_mean``, ``top10_mean``...) of a run's objective."""
    _check_name(objective_name)
    if not isinstance(metric_type, str) or not metric_type:
        raise ValueError("metric_type must be a non-empty string")
    with transaction() as session, RunState(session, run_id) as state:
        set_objective_metrics(state, state.objective(objective_name), {metric_type: value})
    return state.changed


def get_run_objectives(run_id: str) -> list[dict[str, Any]]:
    """Return a run's objectives, by name."""
    with read_transaction() as session:
        rows = session.scalars(
            select(RunObjective).where(RunObjective.run_id == run_id).order_by(RunObjective.objective_name)
        )
        return [objective_to_dict(o) for o in rows]


def get_objectives_of_runs(run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Return the objectives of several runs in one query: by run id, each list by name."""
    found: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    if not found:
        return found
    with read_transaction() as session:
        rows = session.scalars(
            select(RunObjective)
            .where(RunObjective.run_id.in_(list(found)))
            .order_by(RunObjective.run_id, RunObjective.objective_name)
        )
        for objective in rows:
            found[objective.run_id].append(objective_to_dict(objective))
    return found


def delete_run_objectives(run_id: str) -> int:
    """Delete a run's objectives; return how many were deleted."""
    with transaction() as session:
        result = session.execute(delete(RunObjective).where(RunObjective.run_id == run_id))
        # A DELETE's result is a cursor's, which counts the rows (Session.execute types it as any result).
        assert isinstance(result, CursorResult)
        return result.rowcount or 0


def _threshold_conditions(column: Any, name: str, spec: Any) -> list[Any]:
    if not isinstance(spec, Mapping):
        spec = {"min": spec}
    conditions = []
    for op, value in spec.items():
        if op not in THRESHOLD_OPERATORS:
            raise ValueError(
                f"unknown operator {op!r} for objective {name!r}; expected one of {', '.join(THRESHOLD_OPERATORS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"threshold {op} for objective {name!r} must be a finite number, not {value!r}")
        conditions.append(THRESHOLD_OPERATORS[op](column, value))
    return conditions


def query_runs_by_objectives(
    objective_filters: Mapping[str, Any],
    gradient_method: str | None = None,
    status: str | None = None,
    metric: str = "raw_mean",
    limit: int | None = 100,
    where: str | None = None,
    include_unknown: bool = False,
) -> list[dict[str, Any]]:
    """Return runs meeting every objective threshold (and the ``where`` filter string), each with
    its objective values.

    ``objective_filters`` maps an objective name to ``{'min': x}`` / ``{'max': x}``
    (inclusive), ``{'gt': x}`` / ``{'lt': x}`` (strict) or a bare number (a minimum).
    Runs come best first: by the sum of the filtered objectives' values. Runs of status
    ``unknown`` come only when ``status`` names it or with ``include_unknown``.
    """
    if not isinstance(objective_filters, Mapping) or not objective_filters:
        raise ValueError("objective_filters must map at least one objective name to thresholds")
    _metric_column(RunObjective, metric)
    limit = check_limit(limit)
    columns = [TrainingRun.__table__.columns[c] for c in RESULT_COLUMNS]
    statement = select(*columns)
    total = None
    for name, spec in objective_filters.items():
        _check_name(name)
        table = aliased(RunObjective)
        value = _metric_column(table, metric)
        statement = statement.join(
            table,
            and_(
                table.run_id == TrainingRun.run_id,
                table.objective_name == name,
                *_threshold_conditions(value, name, spec),
            ),
        )
        total = value if total is None else total + value
    if gradient_method is not None:
        statement = statement.where(TrainingRun.gradient_method == gradient_method)
    if status is not None:
        statement = statement.where(TrainingRun.status == extract.normalize_status(status))
    elif not include_unknown:
        statement = statement.where(TrainingRun.status != extract.UNKNOWN)
    assert total is not None
    statement = statement.order_by(total.desc(), TrainingRun.run_id).limit(limit)
    with read_transaction() as session:
        statement = statement.where(compile_filter(where, session.get_bind().dialect.name))
        runs = [dict(row._mapping) for row in session.execute(statement)]
    objectives = get_objectives_of_runs([run["run_id"] for run in runs])
    for run in runs:
        run["objectives"] = {
            o["objective_name"]: {k: v for k, v in o.items() if k not in ("run_id", "objective_name")}
            for o in objectives[run["run_id"]]
        }
    return runs


def _value_conditions(
    table: Any,
    objective_name: str,
    metric: str,
    status: str | None,
    gradient_method: str | None = None,
    matching: Any = None,
    include_unknown: bool = False,
) -> list[Any]:
    value = _metric_column(table, metric)
    conditions = [table.objective_name == _check_name(objective_name), value.is_not(None)]
    if status is not None:
        conditions.append(table.status == extract.normalize_status(status))
    elif not include_unknown:
        conditions.append(table.status.is_distinct_from(extract.UNKNOWN))
    if gradient_method is not None:
        conditions.append(table.gradient_method == gradient_method)
    if matching is not None:
        conditions.append(table.run_id.in_(matching))
    return conditions


def _summary_columns(value: Any, dialect: str) -> list[Any]:
    """Aggregates over one objective's values; std is exact on PostgreSQL, from sums on SQLite."""
    spread = (
        func.stddev_samp(value).label("std")
        if dialect == "postgresql"
        else func.sum(value * value).label("sum_of_squares")
    )
    return [
        func.count().label("count"),
        func.avg(value).label("avg"),
        spread,
        func.min(value).label("lowest"),
        func.max(value).label("highest"),
        # Most rows of the objective say how it is optimised (no direction: maximize).
        func.sum(case((RunObjective.direction == "minimize", 1), else_=-1)).label("votes"),
    ]


def _std(row: Any) -> float | None:
    if row.count < 2:
        return None
    if hasattr(row, "std"):
        std: float | None = row.std
        return std
    variance = (row.sum_of_squares - row.count * row.avg * row.avg) / (row.count - 1)
    return math.sqrt(max(variance, 0.0))


def compare_gradient_methods(
    objective_name: str,
    metric: str = "raw_mean",
    status: str | None = "completed",
    where: str | None = None,
    include_unknown: bool = False,
) -> list[dict[str, Any]]:
    """Compare gradient methods on one objective in one query, best average first (direction-aware),
    over the runs the ``where`` filter string matches.

    With ``status=None`` every status counts but ``unknown``, unless ``include_unknown``.
    """
    value = _metric_column(RunObjective, metric)
    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        matching = matching_run_ids(where, dialect)
        totals = (
            select(RunObjective.gradient_method, *_summary_columns(value, dialect))
            .where(
                *_value_conditions(
                    RunObjective, objective_name, metric, status, None, matching, include_unknown
                )
            )
            .group_by(RunObjective.gradient_method)
            .subquery("totals")
        )
        signed = select(
            totals, case((func.sum(totals.c.votes).over() > 0, -1), else_=1).label("sign")
        ).subquery("signed")
        other = aliased(RunObjective)
        best_value = case((signed.c.sign > 0, signed.c.highest), else_=signed.c.lowest)
        best_run_id = (
            select(func.min(other.run_id))
            .where(
                *_value_conditions(other, objective_name, metric, status, None, matching, include_unknown),
                _metric_column(other, metric) == best_value,
                other.gradient_method.is_not_distinct_from(signed.c.gradient_method),
            )
            .scalar_subquery()
        )
        rows = session.execute(
            select(signed, best_run_id.label("best_run_id")).order_by(
                (signed.c.avg * signed.c.sign).desc(), signed.c.gradient_method
            )
        ).all()
    return [
        {
            "gradient_method": row.gradient_method,
            "num_runs": row.count,
            "avg": row.avg,
            "std": _std(row),
            "best": row.highest if row.sign > 0 else row.lowest,
            "worst": row.lowest if row.sign > 0 else row.highest,
            "best_run_id": row.best_run_id,
            "direction": "maximize" if row.sign > 0 else "minimize",
        }
        for row in rows
    ]


def get_objective_statistics(
    objective_name: str,
    metric: str = "raw_mean",
    status: str | None = "completed",
    gradient_method: str | None = None,
    where: str | None = None,
    include_unknown: bool = False,
) -> dict[str, Any]:
    """Return count, avg, std, min, max, median and best_run_id of one objective, over the runs the
    ``where`` filter string matches.

    With ``status=None`` every status counts but ``unknown``, unless ``include_unknown``.
    """
    value = _metric_column(RunObjective, metric)
    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        matching = matching_run_ids(where, dialect)
        conditions = _value_conditions(
            RunObjective, objective_name, metric, status, gradient_method, matching, include_unknown
        )
        row = session.execute(select(*_summary_columns(value, dialect)).where(*conditions)).one()
        # By name: Row.count is also the tuple's method, which is what a type checker sees.
        count: int = row._mapping["count"]
        median = best_run_id = None
        if count:
            # The middle value, or the mean of the two middle values, read in index order.
            middle = (
                select(value.label("value"))
                .where(*conditions)
                .order_by(value)
                .offset((count - 1) // 2)
                .limit(2 - count % 2)
                .subquery()
            )
            median = session.scalar(select(func.avg(middle.c.value)))
            best = row.lowest if row.votes > 0 else row.highest
            best_run_id = session.scalar(
                select(func.min(RunObjective.run_id)).where(*conditions, value == best)
            )
    return {
        "objective_name": objective_name,
        "metric": metric,
        "count": count,
        "avg": row.avg,
        "std": _std(row),
        "min": row.lowest,
        "max": row.highest,
        "median": median,
        "best_run_id": best_run_id,
    }
