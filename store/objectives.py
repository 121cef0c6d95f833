"""The objectives API: per-objective configuration, final values and comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Float, and_, case, cast, delete, func, select
from sqlalchemy.orm import aliased

from store import extract
from store.database import read_transaction, transaction
from store.models import RunObjective, TrainingRun
from store.query import SCALAR_COLUMNS, check_limit
from store.runs import RunState, objective_to_dict, set_objective_metric

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
    with transaction() as session, RunState(session, run_id) as state:
        objective = state.objective(objective_name)
        values = {"objective_alias": objective_alias, "uniprot": uniprot, "direction": direction}
        values["weight"] = extract._float(weight) if weight is not None else None
        for field, value in values.items():
            if value is not None:
                setattr(objective, field, value)
    return state.changed


def update_objective_metric(run_id: str, objective_name: str, metric_type: str, value: Any) -> bool:
    """Set one final statistic (``raw_mean``, ``top10_mean``...) of a run's objective."""
    _check_name(objective_name)
    if not isinstance(metric_type, str) or not metric_type:
        raise ValueError("metric_type must be a non-empty string")
    with transaction() as session, RunState(session, run_id) as state:
        set_objective_metric(state.objective(objective_name), metric_type, value)
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
) -> list[dict[str, Any]]:
    """Return runs meeting every objective threshold, each with its objective values.

    ``objective_filters`` maps an objective name to ``{'min': x}`` / ``{'max': x}``
    (inclusive), ``{'gt': x}`` / ``{'lt': x}`` (strict) or a bare number (a minimum).
    Runs come best first: by the sum of the filtered objectives' values.
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
    assert total is not None
    statement = statement.order_by(total.desc(), TrainingRun.run_id).limit(limit)
    with read_transaction() as session:
        runs = [dict(row._mapping) for row in session.execute(statement)]
    objectives = get_objectives_of_runs([run["run_id"] for run in runs])
    for run in runs:
        run["objectives"] = {
            o["objective_name"]: {k: v for k, v in o.items() if k not in ("run_id", "objective_name")}
            for o in objectives[run["run_id"]]
        }
    return runs


def _direction_sign(values: Any) -> Any:
    # +1 when most of the objective's rows say maximize (or say nothing), -1 for minimize.
    return case(
        (func.sum(case((values.c.direction == "minimize", 1), else_=-1)).over() > 0, -1),
        else_=1,
    )


def _values_query(
    objective_name: str, metric: str, status: str | None, gradient_method: str | None = None
) -> Any:
    value = _metric_column(RunObjective, metric)
    statement = (
        select(
            TrainingRun.gradient_method.label("gradient_method"),
            RunObjective.run_id.label("run_id"),
            cast(value, Float).label("value"),
            RunObjective.direction.label("direction"),
        )
        .join(TrainingRun, TrainingRun.run_id == RunObjective.run_id)
        .where(RunObjective.objective_name == _check_name(objective_name), value.is_not(None))
    )
    if status is not None:
        statement = statement.where(TrainingRun.status == extract.normalize_status(status))
    if gradient_method is not None:
        statement = statement.where(TrainingRun.gradient_method == gradient_method)
    values = statement.subquery("objective_values")
    signed = select(values, _direction_sign(values).label("sign")).subquery("signed_values")
    return signed


def _std(sum_of_squares: float | None, count: int) -> float | None:
    if count < 2 or sum_of_squares is None:
        return None
    return math.sqrt(max(sum_of_squares, 0.0) / (count - 1))


def compare_gradient_methods(
    objective_name: str, metric: str = "raw_mean", status: str | None = "completed"
) -> list[dict[str, Any]]:
    """Compare gradient methods on one objective, best average first (direction-aware)."""
    signed = _values_query(objective_name, metric, status)
    ranked = select(
        signed,
        func.avg(signed.c.value).over(partition_by=signed.c.gradient_method).label("mean"),
        func.row_number()
        .over(
            partition_by=signed.c.gradient_method,
            order_by=[(signed.c.value * signed.c.sign).desc(), signed.c.run_id],
        )
        .label("position"),
    ).subquery("ranked_values")
    sign = func.max(ranked.c.sign)
    statement = (
        select(
            ranked.c.gradient_method,
            func.count().label("num_runs"),
            func.avg(ranked.c.value).label("avg"),
            func.sum((ranked.c.value - ranked.c.mean) * (ranked.c.value - ranked.c.mean)).label("squares"),
            func.max(ranked.c.value).label("highest"),
            func.min(ranked.c.value).label("lowest"),
            func.max(case((ranked.c.position == 1, ranked.c.run_id))).label("best_run_id"),
            sign.label("sign"),
        )
        .group_by(ranked.c.gradient_method)
        .order_by((func.avg(ranked.c.value) * sign).desc(), ranked.c.gradient_method)
    )
    with read_transaction() as session:
        rows = session.execute(statement).all()
    results = []
    for row in rows:
        maximize = row.sign >= 0
        results.append(
            {
                "gradient_method": row.gradient_method,
                "num_runs": row.num_runs,
                "avg": row.avg,
                "std": _std(row.squares, row.num_runs),
                "best": row.highest if maximize else row.lowest,
                "worst": row.lowest if maximize else row.highest,
                "best_run_id": row.best_run_id,
                "direction": "maximize" if maximize else "minimize",
            }
        )
    return results


def get_objective_statistics(
    objective_name: str,
    metric: str = "raw_mean",
    status: str | None = "completed",
    gradient_method: str | None = None,
) -> dict[str, Any]:
    """Return count, avg, std, min, max, median and best_run_id of one objective."""
    signed = _values_query(objective_name, metric, status, gradient_method)
    ranked = select(
        signed,
        func.avg(signed.c.value).over().label("mean"),
        func.count().over().label("total"),
        func.row_number().over(order_by=[signed.c.value, signed.c.run_id]).label("ascending"),
        func.row_number()
        .over(order_by=[(signed.c.value * signed.c.sign).desc(), signed.c.run_id])
        .label("position"),
    ).subquery("ranked_values")
    # The median is the middle value, or the mean of the two middle values.
    middle = and_(ranked.c.ascending >= ranked.c.total / 2.0, ranked.c.ascending <= ranked.c.total / 2.0 + 1)
    statement = select(
        func.count().label("count"),
        func.avg(ranked.c.value).label("avg"),
        func.sum((ranked.c.value - ranked.c.mean) * (ranked.c.value - ranked.c.mean)).label("squares"),
        func.min(ranked.c.value).label("min"),
        func.max(ranked.c.value).label("max"),
        func.avg(case((middle, ranked.c.value))).label("median"),
        func.max(case((ranked.c.position == 1, ranked.c.run_id))).label("best_run_id"),
    )
    with read_transaction() as session:
        row = session.execute(statement).one()
    return {
        "objective_name": objective_name,
        "metric": metric,
        "count": row.count,
        "avg": row.avg,
        "std": _std(row.squares, row.count),
        "min": row.min,
        "max": row.max,
        "median": row.median,
        "best_run_id": row.best_run_id,
    }
