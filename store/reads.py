"""The read side's questions: pages of runs, one run whole, objectives, comparisons, the Pareto
front, crash statistics and the inbox's deliveries, on the read replica when there is one.

Every answer is computed by the database over every matching run, except the Pareto front:
the database hands over the value columns only, and store.pareto finds the front.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select

from store.database import replica_transaction
from store.models import RunObjective, S3Object, TrainingRun
from store.runs import objective_to_dict, run_to_dict


def list_objectives() -> list[dict[str, Any]]:
    """Return each objective's name, direction (the one most of its runs name) and number of runs."""
    minimizing = func.sum(case((RunObjective.direction == "minimize", 1), else_=0))
    statement = (
        select(RunObjective.objective_name, func.count().label("runs"), minimizing.label("minimizing"))
        .group_by(RunObjective.objective_name)
        .order_by(RunObjective.objective_name)
    )
    with replica_transaction() as session:
        rows = session.execute(statement).all()
    return [
        {
            "name": row.objective_name,
            "direction": "minimize" if row.minimizing * 2 > row.runs else "maximize",
            "runs": row.runs,
        }
        for row in rows
    ]


def run_detail(run_id: str) -> dict[str, Any] | None:
    """Return one run with every field, its objectives and its crash-report objects, or None."""
    with replica_transaction() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            return None
        result = run_to_dict(run)
        result["objectives"] = [
            objective_to_dict(o)
            for o in session.scalars(
                select(RunObjective).where(RunObjective.run_id == run_id).order_by(RunObjective.objective_name)
            )
        ]
        result["s3_objects"] = [
            {
                "bucket": o.bucket,
                "key": o.key,
                "event_name": o.event_name,
                "size": o.size,
                "etag": o.etag,
                "updated_at": o.updated_at,
            }
            for o in session.scalars(select(S3Object).where(S3Object.run_id == run_id).order_by(S3Object.key))
        ]
        return result
