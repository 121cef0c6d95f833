"""Statements run straight on the driver read and write what SQLAlchemy's execution would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

import store
from store import jsoncodec
from store.database import transaction
from store.direct import Direct, execute_sql
from store.models import TrainingRun

RUNS = TrainingRun.__table__
# Floats JSONB would change, and a key that looks like the codec's marker.
AWKWARD = {"nan": float("nan"), "big": 1e16, "negative_zero": -0.0, "$float": "kept", "nested": [{"x": 1}]}


def canonical(document: object) -> str:
    """The document as JSONB keeps it: keys sorted, NaN and -0.0 told apart."""
    return jsoncodec.dumps(document, sort_keys=True)


pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def test_rows_read_directly_are_the_rows_sqlalchemy_reads(db):
    store.insert_run("r1", config_dict={"training": {"learning_rate": 3e-4}, "awkward": AWKWARD})
    store.update_run_status("r1", "completed", final_metrics_json={"_step": 5, "loss": float("inf")})
    # A constant the statement carries (OFFSET 0) besides the caller's parameter.
    statement = select(RUNS).where(RUNS.c.run_id == bindparam("run_id")).offset(0)

    with transaction() as session:
        connection = session.connection()
        # Times come back in the session's time zone; the column type gives them in UTC.
        connection.exec_driver_sql("SET TIME ZONE 'Asia/Tokyo'")
        direct = Direct(statement).execute(connection, {"run_id": "r1"})
        through_sqlalchemy = [dict(row._mapping) for row in connection.execute(statement, {"run_id": "r1"})]

    # repr: NaN is unequal to itself, and -0.0 equal to 0.0.
    assert repr(direct) == repr(through_sqlalchemy)
    assert direct[0]["completed_at"].tzinfo is UTC
    assert canonical(direct[0]["config_json"]["awkward"]) == canonical(AWKWARD)


def test_rows_written_directly_read_back_as_written(db):
    store.insert_run("r1")
    store.insert_run("r2")
    statement = (
        update(RUNS)
        .where(RUNS.c.run_id == bindparam("key"))
        .values(
            config_json=bindparam("config", type_=RUNS.c.config_json.type),
            completed_at=bindparam("at", type_=RUNS.c.completed_at.type),
        )
    )
    at = datetime(2026, 12, 5, 9, 30, tzinfo=timezone(timedelta(hours=-5)))

    with transaction() as session:
        Direct(statement).execute_many(
            session.connection(),
            [{"key": "r1", "config": AWKWARD, "at": at}, {"key": "r2", "config": None, "at": None}],
        )

    first, second = store.get_run("r1"), store.get_run("r2")
    assert canonical(first["config_json"]) == canonical(AWKWARD)
    assert first["completed_at"] == at and first["completed_at"].tzinfo is UTC
    assert (second["config_json"], second["completed_at"]) == (None, None)


def test_arrays_sent_in_binary_write_every_value_as_given(db):
    from store.direct import insert_from_arrays
    from store.models import Scaffold

    scaffolds = Scaffold.__table__
    # Text that the text array format would have to quote or escape, a float column given ints
    # among floats (a binary array takes its first value's type), NULLs, and times in a zone.
    awkward = ['c1cc"c{c}c1', "C\\C=C/C", "", "NULL", " spaced ", "c1ccccc1,Cl", "é→ü"]
    rewards = [1, 0.5, None, -2, float("1e-300"), 3, 0.25]
    at = datetime(2026, 12, 7, 11, 0, tzinfo=timezone(timedelta(hours=9)))
    rows = {
        "smiles": awkward,
        "generic_smiles": [None, *awkward[1:]],
        "runs": list(range(len(awkward))),
        "molecules": [2**40, *range(1, len(awkward))],
        "best_reward": rewards,
        "best_run_id": ["r1"] * len(awkward),
        "best_smiles": awkward[::-1],
        "first_seen_at": [at] * len(awkward),
    }

    with transaction() as session:
        Direct(insert_from_arrays(scaffolds, list(rows))).execute(session.connection(), rows)
        found = {row.smiles: row for row in session.execute(select(scaffolds))}

    assert sorted(found) == sorted(awkward)
    for index, smiles in enumerate(awkward):
        row = found[smiles]
        assert row.generic_smiles == rows["generic_smiles"][index]
        assert (row.runs, row.molecules) == (index, rows["molecules"][index])
        assert row.best_reward == rewards[index]
        assert row.best_smiles == awkward[::-1][index]
        assert row.first_seen_at == at


def test_sql_run_on_the_driver_returns_its_rows_in_the_transaction_and_raises_as_sqlalchemy_does(db):
    store.insert_run("r1")

    with transaction() as session:
        connection = session.connection()
        renamed = execute_sql(
            connection,
            "UPDATE training_runs SET run_name = %(name)s WHERE run_id = %(run_id)s RETURNING run_id, run_name",
            {"name": "renamed", "run_id": "r1"},
        )
        nothing = execute_sql(connection, "SET LOCAL work_mem = '8MB'", {})
    with pytest.raises(DBAPIError) as refused, transaction() as session:
        execute_sql(
            session.connection(), "INSERT INTO training_runs (run_id) VALUES (%(run_id)s)", {"run_id": "r1"}
        )

    assert renamed == [("r1", "renamed")]
    assert nothing == []
    assert store.get_run("r1")["run_name"] == "renamed"
    assert isinstance(refused.value, IntegrityError)
