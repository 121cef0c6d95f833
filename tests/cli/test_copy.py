"""`training-db copy`: the SQLite file into PostgreSQL (or another file), every row, verified."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import store
from ingest.cli import main
from store import analyses, inbox
from testkit.factory import generate_runs, load_record
from tests.molecules import ASPIRIN, BENZENE, CAFFEINE, XANTHINE_SCAFFOLD

RECORDS = list(generate_runs(15, seed=3))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def snapshot(url: str) -> dict[str, Any]:
    """Read every run (as get_run gives it) and the inbox; NaN written out so that it equals itself."""
    store.configure(url)
    runs = [store.get_run(run["run_id"]) for run in store.query_runs(order_by="run_id", limit=None)]
    contents = {"runs": runs, "inbox": inbox.list_deliveries(limit=1000)}
    return json.loads(json.dumps(contents, default=repr), parse_constant=str)


@pytest.fixture
def source(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite database with rows in every table, and DATABASE_URL pointing at it."""
    path = tmp_path / "source.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    store.configure(url)
    for record in RECORDS:
        load_record(record)
    inbox.record_delivery("s3", "s3.objects", "records:1", b'{"Records": []}', {"user-agent": "test"})
    store.record_crash_report_object(
        RECORDS[0]["run_id"], "error_log_s3_key", "bucket", "crash-reports/x/error.log", "ObjectCreated:Put"
    )
    store.advance_wandb_sync_cursor("mango-lab", "mango-moo", store.utcnow(), 15)
    # As a worker new to this database: the molecule's analysis is written to it.
    monkeypatch.setattr(analyses, "_recent", {})
    store.record_molecules(RECORDS[0]["run_id"], "batch-1", 10, [{"smiles": ASPIRIN, "reward": 0.5}])
    yield url
    store.get_engine().dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, not even migrated: the copy does that."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/target.db"
        return
    yield request.getfixturevalue("unmigrated_postgres")
    # The copy's connections, before the database is dropped.
    store.get_engine().dispose()


def objective_count() -> int:
    return sum(len(store.get_run_objectives(record["run_id"])) for record in RECORDS)


def test_a_copy_holds_every_run_objective_and_event_of_the_source(source, target):
    objectives = objective_count()

    result = invoke("copy", "--to", target)

    assert result.exit_code == 0, result.output
    assert f"training_runs    {len(RECORDS):>9} rows" in result.output
    assert f"run_objectives   {objectives:>9} rows" in result.output
    assert result.output.splitlines()[-1].endswith("row counts verified")
    assert snapshot(target) == snapshot(source)


def test_new_rows_in_the_copy_continue_after_the_copied_ids(source, target, monkeypatch):
    invoke("copy", "--to", target)
    store.configure(target)

    event_id, new = inbox.record_delivery("s3", "s3.objects", "records:2", b"{}", {})
    store.insert_objective(RECORDS[0]["run_id"], "brand_new_objective")
    # A worker new to the copy: it reads aspirin's analysis there, and writes caffeine's after it.
    monkeypatch.setattr(analyses, "_recent", {})
    store.record_molecules(RECORDS[1]["run_id"], "batch-1", 10, [{"smiles": ASPIRIN}, {"smiles": CAFFEINE}])

    assert (event_id, new) == (2, True)
    assert {row["scaffold"] for row in store.get_run_scaffolds(RECORDS[1]["run_id"])} == {
        BENZENE,
        XANTHINE_SCAFFOLD,
    }
    assert "brand_new_objective" in [
        o["objective_name"] for o in store.get_run_objectives(RECORDS[0]["run_id"])
    ]


def test_a_non_empty_target_is_refused_unless_replaced(source, target):
    objectives = objective_count()
    invoke("copy", "--to", target)

    refused = invoke("copy", "--to", target)
    replaced = invoke("copy", "--to", target, "--replace")

    assert refused.exit_code == 1
    assert refused.output.splitlines()[-1] == (
        "Error: the target database is not empty (inbox_events 1, molecule_analyses 1, s3_objects 1, scaffolds 1, "
        f"training_runs {len(RECORDS)}, wandb_sync_state 1, run_molecule_batches 1, run_molecules 1, "
        f"run_objectives {objectives}, run_scaffolds 1): pass --replace to delete its rows"
    )
    assert replaced.exit_code == 0, replaced.output
    assert snapshot(target) == snapshot(source)


def test_copy_from_an_explicit_source(source, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/elsewhere.db")
    target = f"sqlite:///{tmp_path}/target.db"

    result = invoke("copy", "--from", source, "--to", target)

    assert result.exit_code == 0, result.output
    assert snapshot(target) == snapshot(source)


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        ([], 2, "Missing option '--to'"),
        (["--to", "{source}"], 1, "Error: the source and the target are the same database"),
        (
            ["--from", "sqlite:///{tmp}/missing.db", "--to", "sqlite:///{tmp}/t.db"],
            1,
            "Error: no SQLite database at",
        ),
        (["--to", "postgresql://postgres@127.0.0.1:9/nowhere"], 1, "Error: "),
        (["--to", "sqlite:///{tmp}/t.db", "--batch-size", "0"], 2, "0 is not in the range x>=1"),
    ],
)
def test_bad_copy_arguments_exit_non_zero_with_one_line(source, tmp_path, args, code, reason):
    result = invoke("copy", *(arg.format(source=source, tmp=tmp_path) for arg in args))

    assert result.exit_code == code
    assert reason in result.output
    if code == 1:
        assert len(result.output.splitlines()) == 1
