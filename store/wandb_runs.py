"""Runs as W&B reports them, and how far each W&B project has been synced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import extract
from store.database import read_transaction, transaction
from store.history import DEFAULT_POLICY, HistoryPolicy, set_wandb_history_lines
from store.models import RunHistory, TrainingRun, WandbSyncState
from store.runs import (
    MAX_ID_LENGTH,
    RunState,
    apply_status,
    fit,
    record_history,
    set_columns,
    upsert_config_objectives,
)

# Keys under which the pipeline may log its own run id into the W&B config.
RUN_ID_CONFIG_KEYS = ("run_id", "training_db_run_id")


def _run_id_of(session: Session, wandb_run_id: str, config: Mapping[str, Any] | None) -> str:
    """Return the training run a W&B run belongs to (see upsert_wandb_run)."""
    return (
        next(
            (
                config[k]
                for k in RUN_ID_CONFIG_KEYS
                if config and isinstance(config.get(k), str) and 0 < len(config[k]) <= MAX_ID_LENGTH
            ),
            None,
        )
        or session.scalar(
            select(TrainingRun.run_id)
            .where(TrainingRun.wandb_run_id == wandb_run_id)
            .order_by(TrainingRun.run_id)
        )
        or wandb_run_id
    )


def wandb_history_lines(wandb_run_id: str, config: Mapping[str, Any] | None = None) -> int | None:
    """Return how many history lines W&B reported for the run when its history was last read, or None."""
    with read_transaction() as session:
        run_id = _run_id_of(session, wandb_run_id, config)
        return session.scalar(select(RunHistory.wandb_history_lines).where(RunHistory.run_id == run_id))


def upsert_wandb_run(
    wandb_run_id: str,
    entity: str,
    project: str,
    state: str,
    config: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    created_at: datetime | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    history_lines: int | None = None,
    history_policy: HistoryPolicy = DEFAULT_POLICY,
) -> bool:
    """Merge one run as W&B reports it into the training run it belongs to.

    The run is found by the pipeline's run id logged in the W&B config, else by a
    training run already linked to this W&B id, else it is filed under the W&B id.
    The launch config the pipeline sent stays authoritative; W&B's fills in when
    there is none. Status and summary follow the same order-free rules as events.
    ``history`` rows (``{"_step", "_timestamp", key: value...}``, read when W&B had
    ``history_lines`` of them) are added to the run's history.
    """
    status = extract.normalize_status(state)
    with transaction() as session:
        run_id = _run_id_of(session, wandb_run_id, config)
        with RunState(session, run_id) as run_state:
            run = run_state.run
            reported = {"wandb_run_id": wandb_run_id, "wandb_entity": entity, "wandb_project": project}
            _set_reported(run_state, reported)
            if run.config_json is None and config:
                run.config_json = dict(config)
                columns = extract.config_columns(config)
                set_columns(
                    run_state,
                    {name: value for name, value in columns.items() if getattr(run, name) is None},
                    "config_json",
                )
                upsert_config_objectives(run_state, extract.config_objectives(config))
            _set_reported(run_state, {"run_name": run_name})
            if created_at is not None and (run.created_at is None or created_at < run.created_at):
                run.created_at = created_at
            apply_status(run_state, status, summary)
            history_changed = False
            if history is not None:
                history_changed = record_history(run_state, _history_points(history), history_policy)
                if history_lines is not None:
                    set_wandb_history_lines(session, run_id, history_policy, history_lines)
    return run_state.changed or history_changed


def _history_points(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, Any, dict[str, Any]]]:
    """Turn W&B history rows into points; W&B's own keys (``_step``, ``_runtime``...) are no metrics."""
    points = []
    for row in rows:
        step = row.get("_step")
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            continue
        stamp = row.get("_timestamp")
        time = stamp if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None
        points.append((step, time, {k: v for k, v in row.items() if not k.startswith("_")}))
    return points


def _set_reported(state: RunState, reported: dict[str, Any]) -> None:
    """Set W&B's id of the run, and the fields the run does not have yet, from what W&B reports."""
    run = state.run
    chosen = {
        name: fit(name, value)
        for name, value in reported.items()
        if value is not None and (name == "wandb_run_id" or getattr(run, name) is None)
    }
    set_columns(state, chosen, None)


def wandb_sync_cursor(entity: str, project: str) -> datetime | None:
    """Return when the project's last sync started, or None if it never ran."""
    with read_transaction() as session:
        state = session.get(WandbSyncState, (entity, project))
        return state.synced_through if state else None


def advance_wandb_sync_cursor(entity: str, project: str, synced_through: datetime, runs_seen: int) -> None:
    """Record a finished sync of the project."""
    with transaction() as session:
        state = session.get(WandbSyncState, (entity, project), with_for_update=True)
        if state is None:
            state = WandbSyncState(entity=entity, project=project, runs_seen=0)
            session.add(state)
        if state.synced_through is None or synced_through > state.synced_through:
            state.synced_through = synced_through
        state.last_run_at = synced_through
        state.runs_seen = (state.runs_seen or 0) + runs_seen
