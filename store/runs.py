"""The core API: runs, their status, final metrics and attachments.

Each public function is one transaction. Any call on a run that does not exist
yet creates its row: events arrive out of order, and nothing may be lost.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import repeat
from typing import Any

from sqlalchemy import Float, Integer, String, Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store import event_warnings, extract, history, jsoncodec
from store.database import transaction
from store.fields import parse_time
from store.history import DEFAULT_POLICY, HistoryPolicy
from store.locking import LOCKED, load_objectives, lock_for_unit, lock_run
from store.models import RunObjective, TrainingRun
from store.records import UNLOADED, ObjectiveRecord, Record, RunRecord, changes
from store.schema import OBJECTIVE_FIELDS, RUN_COLUMNS, utcnow

# What insert_run accepts as **metadata: the typed columns a caller may set directly.
METADATA_COLUMNS = frozenset(RUN_COLUMNS) - {"run_id", "updated_at", "progress_json", "last_step", "warnings"}
_RUNS = TrainingRun.__table__


def dialect_insert(
    session: Session,
) -> Callable[[Table], postgresql.Insert] | Callable[[Table], sqlite.Insert]:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _values(row: Record, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(map(row.__dict__.get, columns, repeat(UNLOADED)))


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, dict | list) and isinstance(after, dict | list):
        # Documents compare as canonical JSON, as stored: == would call a NaN unequal to itself
        # and 1 equal to 1.0. Sorted keys, because JSONB keeps no key order.
        return jsoncodec.dumps(before, sort_keys=True) == jsoncodec.dumps(after, sort_keys=True)
    return bool(before == after)


def _same_rows(before: tuple[Any, ...], after: tuple[Any, ...]) -> bool:
    """Compare a row's values before and after a call, refusing new text PostgreSQL cannot store."""
    if all(map(operator.is_, before, after)):
        return True
    same = True
    for old, new in zip(before, after, strict=True):
        if old is new:
            continue
        if isinstance(new, str) and "\x00" in new:
            raise ValueError("text must not contain NUL (\\x00) characters: PostgreSQL cannot store them")
        same = same and _same(old, new)
    return same


class RunState:
    """A locked run and its objectives, telling whether a block of updates changed them."""

    run: RunRecord
    objectives: dict[str, ObjectiveRecord]

    def __init__(self, session: Session, run_id: str, with_objectives: bool = True) -> None:
        self.session = session
        locked = session.info.get(LOCKED)
        if locked is not None:
            # In a unit of work: the run and all its objectives are loaded once, and shared
            # by every call that touches the run.
            if run_id not in locked:
                lock_for_unit(session, [run_id])
            self.run, self.objectives = locked[run_id]
            self.objectives_loaded = True
        else:
            self.run, created = lock_run(session, run_id)
            read = with_objectives and not created
            self.objectives = load_objectives(session, [run_id])[run_id] if read else {}
            # A run created just now has none.
            self.objectives_loaded = with_objectives or created
        # Whether the caller's changes to objectives count as changes of the call.
        self.with_objectives = with_objectives
        self.run_fields_before = {"status": self.run.status, "gradient_method": self.run.gradient_method}
        self.changed = False

    def _state(self) -> tuple[tuple[Any, ...], dict[str, tuple[Any, ...]]]:
        objectives = self.objectives if self.with_objectives else {}
        return (
            self.run.values(),
            {name: _values(o, OBJECTIVE_FIELDS) for name, o in objectives.items()},
        )

    def _unchanged_since(self, before: tuple[tuple[Any, ...], dict[str, tuple[Any, ...]]]) -> bool:
        run, objectives = self._state()
        unset = (None,) * len(OBJECTIVE_FIELDS)
        run_before = before[0]
        if UNLOADED in run_before:
            # A document replaced without being read is compared with the stored one.
            run_before = tuple(
                changes(self.session).original(self.run, column)
                if old is UNLOADED and new is not UNLOADED
                else old
                for column, old, new in zip(RUN_COLUMNS, run_before, run, strict=True)
            )
        # Every row is compared, so that each new value is checked.
        same = [_same_rows(run_before, run)]
        same += [_same_rows(before[1].get(name, unset), values) for name, values in objectives.items()]
        return all(same) and objectives.keys() == before[1].keys()

    def objective(self, name: str) -> ObjectiveRecord:
        """Return the run's objective ``name``, creating it when it is new."""
        objective = self.objectives.get(name)
        if objective is None:
            objective = ObjectiveRecord({"run_id": self.run.run_id, "objective_name": name})
            changes(self.session).add(objective)
            self.objectives[name] = objective
        return objective

    def _copy_run_fields_to_objectives(self) -> None:
        # The objectives carry the run's status and gradient method for index-only comparisons.
        fields = {"status": self.run.status, "gradient_method": self.run.gradient_method}
        for objective in self.objectives.values():
            for name, value in fields.items():
                if getattr(objective, name) != value:
                    setattr(objective, name, value)
        if not self.objectives_loaded and fields != self.run_fields_before:
            self.session.execute(
                update(RunObjective).where(RunObjective.run_id == self.run.run_id).values(**fields)
            )

    def remove_objective(self, name: str) -> None:
        changes(self.session).delete(self.objectives.pop(name))

    def warn(self, field: str, message: str) -> None:
        """Record on the run, and for the event being applied, why ``field`` holds no value."""
        event_warnings.say(f"run {self.run.run_id}: {field}: {message}")
        warnings = self.run.warnings or {}
        if warnings.get(field) != message:
            # Replaced, not changed in place: a record's changes are found by comparing values.
            self.run.warnings = {**warnings, field: message}

    def unwarn(self, field: str) -> None:
        """Drop the run's warning about ``field``, which holds a value again."""
        warnings = self.run.warnings
        if warnings and field in warnings:
            self.run.warnings = {k: v for k, v in warnings.items() if k != field} or None

    def __enter__(self) -> RunState:
        self.before = self._state()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None and not self._unchanged_since(self.before):
            self.run.updated_at = utcnow()
            self.changed = True
            self._copy_run_fields_to_objectives()


def raise_status(run: RunRecord, status: str) -> None:
    if extract.STATUS_RANK[status] > extract.STATUS_RANK[run.status]:
        run.status = status
        if status in extract.FINAL_STATUSES and run.completed_at is None:
            run.completed_at = utcnow()


# Every typed column a value may be too large for: numbers, and text of a bounded length.
_FIT = {
    column.key: extract.column_converter(column)
    for column in _RUNS.columns
    if isinstance(column.type, Integer | Float) or (isinstance(column.type, String) and column.type.length)
}


def coerce_field(name: str, value: Any) -> Any:
    """Return a value for a typed column, an ``extract.Unfit`` when it is too large for it, or raise
    ValueError for a value of the wrong kind."""
    if value is None:
        return None
    column = TrainingRun.__table__.columns[name]
    if name == "status":
        return extract.normalize_status(value)
    if name.endswith("_at"):
        return parse_time(value, name)
    python_type = column.type.python_type
    if python_type is str and value == "":
        return value
    converted = _FIT[name](value)
    if python_type is float:
        if isinstance(converted, extract.Unfit) and isinstance(value, float):
            return None  # NaN and the infinities: documented as no value
        if converted is None:
            raise ValueError(f"{name} must be a number, not {value!r}")
        return converted
    if converted is None:
        raise ValueError(f"{name} must be of type {python_type.__name__}, not {value!r}")
    return converted


def fit(name: str, value: Any) -> Any:
    """Return ``value`` if the typed column ``name`` holds it, else an ``extract.Unfit`` saying why."""
    if value is None or name not in _FIT:
        return value
    converted = _FIT[name](value)
    return value if converted is None else converted


def left_empty(reason: str, kept_in: str | None) -> str:
    """Say that a value was left out of its typed column, and where it is kept."""
    return f"{reason}; left empty" + (f", the value is kept in {kept_in}" if kept_in else "")


def set_columns(state: RunState, columns: Mapping[str, Any], kept_in: str | None) -> None:
    """Set typed columns; one whose value does not fit is emptied, with a warning naming where
    the value is kept."""
    run = state.run
    warned = run.warnings
    for name, value in columns.items():
        if type(value) is extract.Unfit:
            state.warn(name, left_empty(value.reason, kept_in))
            value = None
        elif warned and name in warned:
            state.unwarn(name)
        setattr(run, name, value)


def upsert_config_objectives(
    state: RunState, rows: list[dict[str, Any]], kept_in: str | None = "config_json"
) -> None:
    """Create or update the objectives of config rows; a value that does not fit is left out, with a
    warning."""
    for row in rows:
        name = row["objective_name"]
        if type(name) is extract.Unfit:
            state.warn("objectives", left_empty(f"an objective's name: {name.reason}", kept_in))
            continue
        objective = state.objective(name)
        for field in ("objective_alias", "uniprot", "weight", "direction"):
            value = row.get(field)
            if type(value) is extract.Unfit:
                state.warn(f"objectives.{name}.{field}", left_empty(value.reason, kept_in))
            elif value is not None:
                setattr(objective, field, value)


def set_objective_metrics(state: RunState, objective: ObjectiveRecord, metrics: Mapping[str, Any]) -> None:
    """Set final statistics; what the typed columns cannot hold exactly goes to JSON."""
    extra: dict[str, Any] | None = None
    for metric_type, value in metrics.items():
        if metric_type in extract.OBJECTIVE_COLUMNS:
            number = extract.as_finite_float(value)
            if getattr(objective, metric_type) != number:
                setattr(objective, metric_type, number)
            if value is None or number is not None:
                continue
            unfit = extract.float_column(value)
            if type(unfit) is extract.Unfit:
                state.warn(
                    f"objectives.{objective.objective_name}.{metric_type}",
                    left_empty(unfit.reason, "extra_metrics_json"),
                )
        if extra is None:
            extra = dict(objective.extra_metrics_json or {})
        extra[metric_type] = value
    if extra is not None:
        # Replaced once, not key by key: each assignment is tracked, and the copy grows.
        objective.extra_metrics_json = extra


def apply_summary_objectives(state: RunState) -> None:
    alias_to_name = {
        o.objective_alias: o.objective_name for o in state.objectives.values() if o.objective_alias
    }
    metrics = extract.summary_objective_metrics(state.run.final_metrics_json, alias_to_name)
    for name, values in metrics.items():
        if len(name) > extract.OBJECTIVE_NAME_LENGTH:
            state.warn(
                "objectives",
                f"an objective name of {len(name)} characters is longer than "
                f"{extract.OBJECTIVE_NAME_LENGTH}; its values are kept in final_metrics_json only",
            )
            continue
        set_objective_metrics(state, state.objective(name), values)
    _warn_of_missing_objective_values(state, metrics)
    # A summary that arrived before the launch config filed metrics under a name guessed
    # from the alias; once the config maps that alias to another name, the guess goes.
    guesses = {extract.objective_name_for_alias(alias, {}) for alias in alias_to_name} - set(
        alias_to_name.values()
    )
    for name in guesses & set(state.objectives):
        if state.objectives[name].direction is None and state.objectives[name].objective_alias is None:
            state.remove_objective(name)


def _warn_of_missing_objective_values(state: RunState, metrics: Mapping[str, Any]) -> None:
    """Say so when a completed run's summary holds no value for the objectives its config names."""
    if metrics or state.run.status != "completed":
        if state.run.warnings and "objectives.values" in state.run.warnings:
            state.unwarn("objectives.values")
        return
    named = sorted(o.objective_alias or o.objective_name for o in state.objectives.values())
    if named:
        state.warn(
            "objectives.values",
            "the summary has no objectives/<alias>/<stat> key for "
            + ", ".join(named)
            + ": their values are empty",
        )


def insert_run(
    run_id: str,
    wandb_run_id: str | None = None,
    config_dict: Mapping[str, Any] | None = None,
    chain_of_custody_id: str | None = None,
    **metadata: Any,
) -> bool:
    """Insert or update a run from its launch config; return whether anything changed.

    The run is launched at least: a run created by anything else before its launch is ``unknown``.
    """
    unknown = sorted(set(metadata) - METADATA_COLUMNS)
    if unknown:
        raise ValueError(f"unknown run field(s): {', '.join(unknown)}")
    if config_dict is not None and not isinstance(config_dict, Mapping):
        raise ValueError("config_dict must be a mapping")
    if wandb_run_id is not None and not isinstance(wandb_run_id, str):
        raise ValueError("wandb_run_id must be a string")
    if chain_of_custody_id is not None and not isinstance(chain_of_custody_id, str):
        raise ValueError("chain_of_custody_id must be a string")
    columns = extract.config_columns(config_dict)
    explicit = {name: coerce_field(name, value) for name, value in metadata.items()}
    explicit.update(
        {
            k: fit(k, v)
            for k, v in (("wandb_run_id", wandb_run_id), ("chain_of_custody_id", chain_of_custody_id))
            if v is not None
        }
    )
    status = explicit.pop("status", None)
    with transaction() as session, RunState(session, run_id) as state:
        run = state.run
        set_columns(state, columns, "config_json")
        set_columns(state, {k: v for k, v in explicit.items() if v is not None}, None)
        if config_dict is not None:
            run.config_json = dict(config_dict)
        raise_status(run, "launched")
        if status is not None:
            raise_status(run, status)
        objectives = extract.config_objectives(config_dict)
        if objectives:
            upsert_config_objectives(state, objectives)
            if run.final_metrics_json is not None:
                apply_summary_objectives(state)
    return state.changed


def update_run_status(
    run_id: str,
    status: str,
    final_metrics_json: Mapping[str, Any] | None = None,
    final_loss: float | None = None,
    total_training_steps: int | None = None,
    duration_seconds: float | None = None,
) -> bool:
    """Move a run to ``status`` and store its final W&B summary; return whether anything changed."""
    status = extract.normalize_status(status)
    if final_metrics_json is not None and not isinstance(final_metrics_json, Mapping):
        raise ValueError("final_metrics_json must be a mapping")
    explicit = {
        "final_loss": coerce_field("final_loss", final_loss),
        "total_training_steps": coerce_field("total_training_steps", total_training_steps),
        "duration_seconds": coerce_field("duration_seconds", duration_seconds),
    }
    with transaction() as session, RunState(session, run_id) as state:
        apply_status(state, status, final_metrics_json)
        set_columns(state, {k: v for k, v in explicit.items() if v is not None}, None)
    return state.changed


def apply_status(state: RunState, status: str, summary: Mapping[str, Any] | None) -> None:
    """Raise the run's status, and take the summary when it wins (with its final fields and objectives)."""
    run = state.run
    take_summary = summary is not None and _summary_wins(run, status, summary)
    raise_status(run, status)
    if summary is not None and take_summary:
        run.final_metrics_json = dict(summary)
        set_columns(state, extract.summary_columns(summary), "final_metrics_json")
        apply_summary_objectives(state)


def _summary_step(summary: Mapping[str, Any] | None) -> int | float:
    step = summary.get("_step") if isinstance(summary, Mapping) else None
    # Compared as they are: float() of an integer past a double's range raises.
    return step if isinstance(step, int | float) and not isinstance(step, bool) and step == step else -1


def _summary_wins(run: RunRecord, status: str, summary: Mapping[str, Any]) -> bool:
    # The final state must not depend on arrival order: the summary of the highest-ranked
    # status wins, and between equals the one that saw more steps.
    if run.final_metrics_json is None:
        return True
    new_rank, rank = extract.STATUS_RANK[status], extract.STATUS_RANK[run.status]
    if new_rank != rank:
        return new_rank > rank
    return _summary_step(summary) >= _summary_step(run.final_metrics_json)


def record_progress(
    run_id: str,
    step: int,
    metrics: Mapping[str, Any] | None = None,
    time: datetime | None = None,
    history: HistoryPolicy = DEFAULT_POLICY,
) -> bool:
    """Merge live training metrics at ``step`` into the run, older steps never overwriting newer
    ones, and add the point at ``time`` to the run's history as ``history`` says."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("step must be a non-negative integer")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise ValueError("metrics must be a mapping")
    fitted = fit("last_step", step)
    with transaction() as session, RunState(session, run_id, with_objectives=False) as state:
        history_changed = record_history(state, [(step, time, metrics or {})], history)
        run = state.run
        raise_status(run, "running")
        if type(fitted) is extract.Unfit:
            # Past any step a column holds, so the latest: its metrics are the run's progress.
            set_columns(state, {"last_step": fitted}, None)
            run.progress_json = dict(metrics or {})
        elif run.last_step is None or step > run.last_step:
            run.last_step = step
            run.progress_json = dict(metrics or {})
            if run.warnings:
                state.unwarn("last_step")
        elif step == run.last_step:
            run.progress_json = {**(run.progress_json or {}), **(metrics or {})}
    return state.changed or history_changed


def record_history(
    state: RunState,
    points: Iterable[tuple[int, datetime | float | None, Mapping[str, Any]]],
    policy: HistoryPolicy,
) -> bool:
    """Add points to the locked run's history, warning of keys left out; return whether it changed."""
    # In a unit of work, the histories of all its runs are read at once.
    neighbours = state.session.info.get(LOCKED, {}).keys()
    changed, dropped = history.add_points(state.session, state.run.run_id, points, policy, neighbours)
    if dropped:
        state.warn(
            "history",
            f"the history keeps {policy.max_keys} keys (HISTORY_MAX_KEYS); "
            f"left out: {', '.join(sorted(dropped)[:10])}" + (" ..." if len(dropped) > 10 else ""),
        )
    return changed


def _attach(run_id: str, **keys: str | None) -> bool:
    for name, value in keys.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
    with transaction() as session, RunState(session, run_id, with_objectives=False) as state:
        set_columns(state, {name: fit(name, value) for name, value in keys.items() if value}, None)
    return state.changed


def attach_crash_data(
    run_id: str,
    error_log_s3_key: str | None = None,
    crash_report_s3_key: str | None = None,
    crash_analysis_s3_key: str | None = None,
) -> bool:
    """Record the S3 keys of a run's crash report; return whether anything changed."""
    return _attach(
        run_id,
        error_log_s3_key=error_log_s3_key,
        crash_report_s3_key=crash_report_s3_key,
        crash_analysis_s3_key=crash_analysis_s3_key,
    )


def mark_crashed(
    run_id: str,
    error: str | None = None,
    error_log_s3_key: str | None = None,
    crash_report_s3_key: str | None = None,
    crash_analysis_s3_key: str | None = None,
) -> bool:
    """Mark a run crashed, keeping its error message and any crash-report keys."""
    keys = {
        "error_message": error,
        "error_log_s3_key": error_log_s3_key,
        "crash_report_s3_key": crash_report_s3_key,
        "crash_analysis_s3_key": crash_analysis_s3_key,
    }
    with transaction() as session, RunState(session, run_id, with_objectives=False) as state:
        raise_status(state.run, "crashed")
        set_columns(state, {name: fit(name, value) for name, value in keys.items() if value}, None)
    return state.changed


def attach_conversation(run_id: str, conversation_s3_key: str) -> bool:
    """Record the S3 key of the conversation that analysed a run."""
    return _attach(run_id, conversation_s3_key=conversation_s3_key)


def attach_blog_post(run_id: str, blog_url: str) -> bool:
    """Record the URL of a blog post written about a run."""
    return _attach(run_id, blog_post_url=blog_url)


def run_to_dict(run: TrainingRun | RunRecord) -> dict[str, Any]:
    return {column: getattr(run, column) for column in RUN_COLUMNS}


def objective_to_dict(objective: RunObjective | ObjectiveRecord) -> dict[str, Any]:
    return {"run_id": objective.run_id, **{f: getattr(objective, f) for f in OBJECTIVE_FIELDS}}
