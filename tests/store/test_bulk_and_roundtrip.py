"""Runs come back from the store field by field, and the bulk loader writes what the per-run API writes."""

from __future__ import annotations

import copy
import math
import threading
from typing import Any

import pytest
from sqlalchemy import Text, cast, delete, select

import store
from store.models import RunObjective, TrainingRun
from testkit.factory import generate_runs, load_record

ROUND_TRIP_RUNS = 1000
COMPARED_RUNS = 200
TIMESTAMPS = ("created_at", "updated_at", "completed_at")
OBJECTIVE_COLUMNS = ("raw_mean", "normalized_mean", "raw_std", "normalized_std")
W_AND_B_STATES = {"finished": "completed"}


def same(a: Any, b: Any) -> bool:
    """Tell whether two JSON-like values are equal, NaN equal to NaN and 1 not equal to 1.0 or True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def finite(value: Any) -> Any:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def expected_columns(record: dict[str, Any]) -> dict[str, Any]:
    """Return the typed columns a record must fill, read from where the design says they are."""
    config, summary, crash = record["config"], record["summary"] or {}, record["crash"]
    training = config["training"]
    crash_keys = crash["keys"] if crash else [None, None, None]
    runtime = summary.get("_wandb", {}).get("runtime")
    return {
        "run_id": record["run_id"],
        "wandb_run_id": record["wandb_run_id"],
        "wandb_entity": record["entity"],
        "wandb_project": record["project"],
        "chain_of_custody_id": record["chain_of_custody_id"],
        "run_name": config["run_name"],
        "status": W_AND_B_STATES.get(record["state"], record["state"]),
        "gradient_method": training["gradient_method"],
        "batch_size": training["batch_size"],
        "learning_rate": training["learning_rate"],
        "gradient_accumulation_steps": training["gradient_accumulation_steps"],
        "num_epochs": training["num_epochs"],
        "max_steps": training["max_steps"],
        "optimizer": training["optimizer"],
        "model_name": config["model"]["name"],
        "num_objectives": len(config["objectives"]),
        "seed": training["seed"],
        "instance_type": config["infra"]["instance_type"],
        "git_commit": config["git_commit"],
        "final_loss": finite(summary.get("train/loss")),
        "total_training_steps": summary.get("_step"),
        "duration_seconds": None if runtime is None else float(runtime),
        "last_step": None,
        "error_message": None,
        "error_log_s3_key": crash_keys[0],
        "crash_report_s3_key": crash_keys[1],
        "crash_analysis_s3_key": crash_keys[2],
        "conversation_s3_key": None,
        "blog_post_url": None,
        "progress_json": None,
    }


def expected_objectives(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return each configured objective with its final summary statistics, by name."""
    summary = record["summary"] or {}
    objectives = {}
    for entry in record["config"]["objectives"]:
        prefix = f"objectives/{entry['alias']}/"
        stats = {key[len(prefix) :]: value for key, value in summary.items() if key.startswith(prefix)}
        # Columns hold finite numbers; everything else, NaN included, is kept in the JSON.
        extra = {k: v for k, v in stats.items() if k not in OBJECTIVE_COLUMNS or finite(v) is None}
        objectives[entry["name"]] = {
            "run_id": record["run_id"],
            "objective_name": entry["name"],
            "objective_alias": entry["alias"],
            "uniprot": entry["params"].get("uniprot"),
            "weight": float(entry["weight"]),
            "direction": entry["direction"],
            **{column: finite(stats.get(column)) for column in OBJECTIVE_COLUMNS},
            "extra_metrics_json": extra or None,
        }
    return objectives


def test_a_thousand_runs_come_back_from_get_run_field_by_field(db: str) -> None:
    records = list(generate_runs(ROUND_TRIP_RUNS, seed=1))
    for record in records:
        load_record(record)

    for record in records:
        run = store.get_run(record["run_id"])
        assert run is not None
        assert same(run["config_json"], record["config"])
        assert same(run["final_metrics_json"], record["summary"])
        columns = expected_columns(record)
        assert {name: run[name] for name in columns} == columns
        assert (run["completed_at"] is not None) == (record["state"] != "running")
        objectives = {o["objective_name"]: o for o in run["objectives"]}
        assert same(objectives, expected_objectives(record)), record["run_id"]


def snapshot(run_ids: list[str]) -> list[Any]:
    """Return what the store holds for these runs, as get_run shows it and as raw rows."""
    api = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None
        api.append(({k: v for k, v in run.items() if k not in TIMESTAMPS}, store.get_run_objectives(run_id)))
    with store.get_engine().connect() as connection:
        rows = [
            connection.execute(
                select(*[raw(c) for c in table.__table__.columns if c.name != "id"]).order_by(*order)
            ).all()
            for table, order in (
                (TrainingRun, [TrainingRun.run_id]),
                (RunObjective, [RunObjective.run_id, RunObjective.objective_name]),
            )
        ]
    return [api, rows]


def raw(column: Any) -> Any:
    """Select a column as stored: JSON as its text (SQL NULL apart from JSON null), times as set or not."""
    if column.name in TIMESTAMPS:
        return column.is_(None).label(column.name)
    if column.name.endswith("_json"):
        return cast(column, Text).label(column.name)
    return column


def delete_all_runs() -> None:
    with store.get_engine().begin() as connection:
        connection.execute(delete(RunObjective))
        connection.execute(delete(TrainingRun))


def assert_same_snapshots(bulk: list[Any], per_call: list[Any]) -> None:
    (bulk_api, bulk_rows), (api, rows) = bulk, per_call
    assert len(bulk_api) == len(api)
    for (bulk_run, bulk_objectives), (run, objectives) in zip(bulk_api, api, strict=True):
        assert same(bulk_run, run), run["run_id"]
        assert same(bulk_objectives, objectives), run["run_id"]
    assert bulk_rows == rows


def test_bulk_load_writes_the_rows_the_public_api_writes(db: str) -> None:
    records = list(generate_runs(COMPARED_RUNS, seed=2))
    run_ids = [r["run_id"] for r in records]
    for record in records:
        load_record(record)
    per_call = snapshot(run_ids)
    delete_all_runs()

    assert store.load_runs(records, batch_size=64) == COMPARED_RUNS

    assert_same_snapshots(snapshot(run_ids), per_call)


def test_bulk_load_merges_records_of_existing_runs_as_the_public_api_does(db: str) -> None:
    records = list(generate_runs(120, seed=3))
    # Late and repeated events: a stale "running" record of a finished run in the same
    # batch as the run itself, and runs that the pipeline wrote before the backfill.
    stale = copy.deepcopy(next(r for r in records[60:] if r["state"] == "finished"))
    stale.update(state="running", summary=None, crash=None)
    already_there, backfill = records[:40], [*records[20:], stale]
    run_ids = sorted(r["run_id"] for r in records)

    for record in [*already_there, *backfill]:
        load_record(record)
    per_call = snapshot(run_ids)
    delete_all_runs()
    for record in already_there:
        load_record(record)

    assert store.load_runs(backfill, batch_size=50) == len(backfill)

    assert_same_snapshots(snapshot(run_ids), per_call)
    assert store.get_stats()["total_runs"] == len(records)


@pytest.mark.parametrize("batch_size", [0, -1, True, 1.5, 1001])
def test_bulk_load_refuses_a_batch_size_out_of_range(db: str, batch_size: Any) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        store.load_runs([], batch_size=batch_size)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_bulk_load_waits_for_a_transaction_creating_the_same_run_then_merges_into_it(db: str) -> None:
    record = next(r for r in generate_runs(20, seed=3) if r["state"] == "finished")
    loaded = threading.Event()

    def load() -> None:
        store.load_runs([record])
        loaded.set()

    with store.unit_of_work([record["run_id"]]):
        store.attach_blog_post(record["run_id"], "https://blog.example/run")
        other = threading.Thread(target=load)
        other.start()
        assert not loaded.wait(0.5)
    other.join(timeout=30)

    run = store.get_run(record["run_id"])
    assert loaded.is_set()
    assert run["blog_post_url"] == "https://blog.example/run"
    assert run["status"] == "completed"
    assert same(run["config_json"], record["config"])
