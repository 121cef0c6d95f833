"""Load many run records at once: the benchmark's and the backfills' fast path.

A record has the shape the pipeline sees for one run: ``run_id``,
``wandb_run_id``, ``entity``, ``project``, ``chain_of_custody_id``,
``config``, ``state``, ``summary`` and ``crash`` (``{"keys": [error log,
report, analysis]}`` or None). Loading it gives exactly the rows that
``insert_run``, ``update_run_status`` and ``attach_crash_data`` give when
called one after the other, because it is built with the same helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from sqlalchemy import insert

from store import extract
from store.database import transaction
from store.locking import check_run_id, lock_creation
from store.models import RunObjective, TrainingRun
from store.records import ObjectiveRecord, RunRecord
from store.runs import (
    RunState,
    apply_status,
    attach_crash_data,
    coerce_field,
    dialect_insert,
    fit,
    insert_run,
    objective_to_dict,
    run_to_dict,
    set_columns,
    update_run_status,
    upsert_config_objectives,
)
from store.schema import utcnow

# Each run of a batch holds a slot of PostgreSQL's lock table until the commit (lock_creation).
MAX_BATCH_SIZE = 1000
CRASH_COLUMNS = ("error_log_s3_key", "crash_report_s3_key", "crash_analysis_s3_key")


class _NewRun(RunState):
    """A run that does not exist yet, built in memory for the helpers that take a RunState."""

    def __init__(self, run_id: str) -> None:  # no session: there is nothing to load or lock
        now = utcnow()
        self.run = RunRecord({"run_id": run_id, "status": "launched", "created_at": now, "updated_at": now})
        self.objectives: dict[str, ObjectiveRecord] = {}

    def objective(self, name: str) -> ObjectiveRecord:
        if name not in self.objectives:
            self.objectives[name] = ObjectiveRecord({"run_id": self.run.run_id, "objective_name": name})
        return self.objectives[name]

    def remove_objective(self, name: str) -> None:
        del self.objectives[name]


def _mapping(record: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = record.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{key} of run {record.get('run_id')!r} must be a mapping")
    return value


def _crash_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    crash = _mapping(record, "crash")
    return dict(zip(CRASH_COLUMNS, crash["keys"], strict=True)) if crash else {}


def _build(record: Mapping[str, Any]) -> _NewRun:
    """Apply insert_run, update_run_status and attach_crash_data to a new run, in memory."""
    state = _NewRun(check_run_id(record["run_id"]))
    run = state.run
    config, summary = _mapping(record, "config"), _mapping(record, "summary")
    status = extract.normalize_status(record["state"])
    crash_keys = _crash_keys(record)
    for name, value in crash_keys.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")

    explicit = {
        "wandb_run_id": fit("wandb_run_id", record.get("wandb_run_id")),
        "chain_of_custody_id": fit("chain_of_custody_id", record.get("chain_of_custody_id")),
        "wandb_entity": coerce_field("wandb_entity", record.get("entity")),
        "wandb_project": coerce_field("wandb_project", record.get("project")),
    }
    set_columns(state, extract.config_columns(config), "config_json")
    set_columns(state, {k: v for k, v in explicit.items() if v is not None}, None)
    if config is not None:
        run.config_json = dict(config)
    upsert_config_objectives(state, extract.config_objectives(config))

    apply_status(state, status, summary)

    set_columns(state, {name: fit(name, value) for name, value in crash_keys.items() if value}, None)
    return state


def _load_one(record: Mapping[str, Any]) -> None:
    """Load one record call by call through the public API, merging into an existing run."""
    run_id = record["run_id"]
    insert_run(
        run_id,
        wandb_run_id=record.get("wandb_run_id"),
        config_dict=_mapping(record, "config"),
        chain_of_custody_id=record.get("chain_of_custody_id"),
        wandb_entity=record.get("entity"),
        wandb_project=record.get("project"),
    )
    update_run_status(run_id, record["state"], final_metrics_json=_mapping(record, "summary"))
    crash_keys = _crash_keys(record)
    if crash_keys:
        attach_crash_data(run_id, **crash_keys)


def _load_batch(records: list[Mapping[str, Any]]) -> None:
    new: dict[str, _NewRun] = {}
    for record in records:
        # Only a run's first record in the batch can create it; later ones merge into it.
        if record["run_id"] not in new:
            new[record["run_id"]] = _build(record)
    runs = TrainingRun.__table__
    inserted: set[str] = set()
    with transaction() as session:
        lock_creation(session, list(new))
        # A run that exists already (or was written since) is skipped here, left to _load_one.
        insert_runs = (
            dialect_insert(session)(runs)
            .on_conflict_do_nothing(index_elements=["run_id"])
            .returning(runs.c.run_id)
        )
        inserted.update(session.scalars(insert_runs, [run_to_dict(state.run) for state in new.values()]))
        objectives = [
            {
                **objective_to_dict(o),
                "status": new[run_id].run.status,
                "gradient_method": new[run_id].run.gradient_method,
            }
            for run_id in inserted
            for o in new[run_id].objectives.values()
        ]
        if objectives:
            session.execute(insert(RunObjective.__table__), objectives)
    for record in records:
        if record["run_id"] in inserted:
            inserted.remove(record["run_id"])  # its first record went in with the batch
        else:
            _load_one(record)


def _batches(records: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def load_runs(
    records: Iterable[Mapping[str, Any]],
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Load run records in batches of multi-row inserts; return how many records were loaded.

    Each batch is one transaction. Runs that do not exist yet are inserted in bulk,
    with their objectives. A record whose run already exists (in the database, or
    earlier in the same batch) is not upserted: it goes through the per-run API
    after its batch commits, in order, so the store's merge rules (the status
    ladder, the summary with the most steps wins) apply to it unchanged. A record
    the API would refuse raises ValueError before anything of its batch is written.
    ``progress`` is called after each batch with the number of records it held.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise ValueError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")
    loaded = 0
    for batch in _batches(records, batch_size):
        _load_batch(batch)
        loaded += len(batch)
        if progress is not None:
            progress(len(batch))
    return loaded
