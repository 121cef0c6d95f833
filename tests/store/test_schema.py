"""The schema: migrations match the models, and the design document's SQL still runs."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

import store
from store import migrate, schema
from store.database import make_engine
from store.models import Base

QUERY_2 = """
SELECT
  r.gradient_method,
  COUNT(*) as num_runs,
  AVG(o.raw_mean) as avg_comt,
  MAX(o.raw_mean) as best_comt
FROM training_runs r
JOIN run_objectives o ON r.run_id = o.run_id
WHERE o.objective_name = 'COMT_activity'
  AND r.status = 'completed'
GROUP BY r.gradient_method
ORDER BY avg_comt DESC;
"""
QUERY_3 = """
SELECT r.run_id, r.gradient_method,
       o1.raw_mean as comt,
       o2.raw_mean as drd5,
       o3.raw_mean as qed
FROM training_runs r
JOIN run_objectives o1 ON r.run_id = o1.run_id AND o1.objective_name = 'COMT_activity'
JOIN run_objectives o2 ON r.run_id = o2.run_id AND o2.objective_name = 'DRD5_activity'
JOIN run_objectives o3 ON r.run_id = o3.run_id AND o3.objective_name = 'QED'
WHERE r.status = 'completed'
  AND o1.raw_mean > 0.75
  AND o2.raw_mean > 0.70
  AND o3.raw_mean > 0.65
ORDER BY (o1.raw_mean + o2.raw_mean + o3.raw_mean) DESC
LIMIT 20;
"""
QUERY_4 = """
SELECT
  gradient_method,
  COUNT(*) as total,
  SUM(CASE WHEN status = 'crashed' THEN 1 ELSE 0 END) as crashes,
  ROUND(100.0 * SUM(CASE WHEN status = 'crashed' THEN 1 ELSE 0 END) / COUNT(*), 1) as crash_rate
FROM training_runs
GROUP BY gradient_method;
"""
QUERY_5_SQLITE = """
SELECT
  run_id,
  gradient_method,
  json_extract(config_json, '$.training.gradient_accumulation_steps') as gas
FROM training_runs
WHERE json_extract(config_json, '$.training.gradient_accumulation_steps') > 4
  AND status = 'completed';
"""
QUERY_5_POSTGRESQL = """
SELECT
  run_id,
  gradient_method,
  (config_json #>> '{training,gradient_accumulation_steps}')::numeric as gas
FROM training_runs
WHERE (config_json #>> '{training,gradient_accumulation_steps}')::numeric > 4
  AND status = 'completed';
"""


def test_the_migrations_create_exactly_the_models_schema(db):
    with store.get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert differences == []
    assert migrate.schema_is_current()


def test_the_indexes_have_their_postgresql_options_once_an_engine_for_postgresql_is_made():
    make_engine("postgresql://nobody@127.0.0.1:1/none").dispose()
    created = {
        index.name: str(CreateIndex(index).compile(dialect=postgresql.dialect()))
        for table in schema.metadata.sorted_tables
        for index in table.indexes
    }

    for name in ("ix_run_objectives_name_raw_mean", "ix_run_objectives_name_normalized_mean"):
        assert created[name].endswith("INCLUDE (status, gradient_method, direction)")
    assert created["ix_inbox_events_unfinished"].endswith("WHERE status IN ('pending', 'failed', 'processing')")


@pytest.fixture
def design_runs(db):
    values = {
        "a": ("mgda", "completed", 8, (0.9, 0.8, 0.7)),
        "b": ("mgda", "crashed", 2, (0.95, 0.9, 0.9)),
        "c": ("pcgrad", "completed", 16, (0.8, 0.75, 0.66)),
        "d": ("pcgrad", "completed", 1, (0.5, 0.9, 0.9)),
    }
    names = ("COMT_activity", "DRD5_activity", "QED")
    for run_id, (method, status, gas, means) in values.items():
        config = {
            "training": {"gradient_method": method, "gradient_accumulation_steps": gas},
            "objectives": [{"name": n, "alias": f"{n}_maximize", "direction": "maximize"} for n in names],
        }
        store.insert_run(run_id, config_dict=config)
        summary = {f"objectives/{n}_maximize/raw_mean": m for n, m in zip(names, means, strict=True)}
        store.update_run_status(run_id, status, final_metrics_json=summary)
    return db


def _rows(sql: str) -> list[tuple]:
    with store.get_engine().connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_the_design_documents_queries_run_unchanged(design_runs):
    assert [(m, n, pytest.approx(a), b) for m, n, a, b in _rows(QUERY_2)] == [
        ("mgda", 1, 0.9, 0.9),
        ("pcgrad", 2, 0.65, 0.8),
    ]
    assert [r[0] for r in _rows(QUERY_3)] == ["a", "c"]
    assert sorted((m, t, c, float(rate)) for m, t, c, rate in _rows(QUERY_4)) == [
        ("mgda", 2, 1, 50.0),
        ("pcgrad", 2, 0, 0.0),
    ]
    query_5 = QUERY_5_SQLITE if design_runs == "sqlite" else QUERY_5_POSTGRESQL
    assert sorted((r[0], int(r[2])) for r in _rows(query_5)) == [("a", 8), ("c", 16)]


def test_the_design_documents_api_examples_run_unchanged(design_runs):
    runs = store.query_runs_by_objectives(
        objective_filters={"COMT_activity": {"min": 0.8}, "DRD5_activity": {"min": 0.7}},
        gradient_method="mgda",
        status="completed",
    )
    results = store.compare_gradient_methods("DRD5_activity")

    assert [r["run_id"] for r in runs] == ["a"]
    assert [f"{r['gradient_method']}: avg={r['avg']:.3f}, best={r['best']:.3f}" for r in results] == [
        "pcgrad: avg=0.825, best=0.900",
        "mgda: avg=0.800, best=0.800",
    ]
    assert [
        r["run_id"] for r in store.query_runs(filters={"gradient_method": "mgda", "status": "completed"})
    ] == ["a"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_run_documents_are_compressed_with_lz4_where_postgresql_has_it(db):
    config = {"objectives": [{"name": f"objective_{i}", "weight": i / 7} for i in range(200)]}
    store.insert_run("r1", config_dict=config)

    with store.get_engine().connect() as connection:
        has_lz4 = connection.execute(
            text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
        compression = connection.execute(
            text("SELECT pg_column_compression(config_json) FROM training_runs WHERE run_id = 'r1'")
        ).scalar()

    assert compression == ("lz4" if has_lz4 else "pglz")
    assert store.get_run("r1")["config_json"] == config


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_migration_0008_adds_the_json_path_functions_and_its_downgrade_drops_them(db):
    engine = store.get_engine()
    names = {"training_db_json_number", "training_db_json_string", "training_db_json_boolean", "training_db_json_missing"}

    def functions() -> set[str]:
        with engine.connect() as connection:
            query = text("SELECT proname FROM pg_proc WHERE proname LIKE 'training\\_db\\_json\\_%'")
            return set(connection.execute(query).scalars())

    assert functions() == names
    try:
        command.downgrade(migrate.alembic_config(engine), "0007")
        assert functions() == set()
    finally:
        migrate.upgrade(engine)
    assert functions() == names
    assert migrate.schema_is_current()


def test_migration_0010_adds_the_aggregate_indexes_and_its_downgrade_removes_them(db):
    engine = store.get_engine()
    postgresql = engine.dialect.name == "postgresql"

    def indexes() -> dict[str, str]:
        with engine.connect() as connection:
            if postgresql:
                query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN (:a, :b)"
            else:
                query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (:a, :b)"
            names = {"a": "ix_training_runs_created_at", "b": "ix_run_objectives_name_method_raw_mean"}
            return {name: definition for name, definition in connection.execute(text(query), names)}

    current = indexes()
    assert "ix_run_objectives_name_method_raw_mean" in current
    if postgresql:
        assert current["ix_training_runs_created_at"].endswith("INCLUDE (status, gradient_method)")
    try:
        command.downgrade(migrate.alembic_config(engine), "0009")
        before = indexes()
        assert "ix_run_objectives_name_method_raw_mean" not in before
        assert "INCLUDE" not in before["ix_training_runs_created_at"]
    finally:
        migrate.upgrade(engine)
    assert indexes() == current
    assert migrate.schema_is_current()
