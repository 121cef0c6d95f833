"""query_runs: typed columns, operators, JSON paths, ordering and the errors bad filters get."""

from __future__ import annotations

import pytest

import store


@pytest.fixture
def runs(db):
    """Four runs with distinct typed values, config paths and summaries."""
    rows = [
        ("a", "mgda", 64, 1e-3, 4, 0.3, "2026-01-01T00:00:00Z", "completed"),
        ("b", "mgda", 32, 1e-4, 8, 0.7, "2026-01-02T00:00:00Z", "completed"),
        ("c", "pcgrad", 64, 3e-4, 16, 0.5, "2026-01-03T00:00:00Z", "crashed"),
        ("d", "cagrad", 128, 1e-5, 1, None, "2026-01-04T00:00:00Z", "running"),
    ]
    for run_id, method, batch, lr, gas, loss, created, status in rows:
        config = {
            "training": {
                "gradient_method": method,
                "batch_size": batch,
                "learning_rate": lr,
                "gradient_accumulation_steps": gas,
            },
            "tags": ["sweep"] if run_id in "ab" else [],
            "experience_replay": run_id == "a",
            "scheduler": "cosine" if run_id != "c" else "linear",
        }
        store.insert_run(run_id, config_dict=config, created_at=created, run_name=f"{method}-{run_id}")
        summary = {"train/loss": loss, "_wandb": {"runtime": batch}} if loss is not None else None
        store.update_run_status(run_id, status, final_metrics_json=summary)
    return db


def ids(result):
    return [row["run_id"] for row in result]


def test_equality_on_typed_columns(runs):
    assert ids(store.query_runs({"gradient_method": "mgda", "batch_size": 64})) == ["a"]


def test_the_default_order_is_newest_first(runs):
    assert ids(store.query_runs()) == ["d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"learning_rate": {"gt": 1e-4}}, ["a", "c"]),
        ({"learning_rate": {"gte": 1e-4}}, ["a", "b", "c"]),
        ({"batch_size": {"min": 64, "max": 64}}, ["a", "c"]),
        ({"batch_size": {"lt": 64}}, ["b"]),
        ({"batch_size": {"lte": 64}}, ["a", "b", "c"]),
        ({"gradient_method": {"in": ["pcgrad", "cagrad"]}}, ["c", "d"]),
        ({"gradient_method": {"ne": "mgda"}}, ["c", "d"]),
        ({"run_name": {"like": "mgda-%"}}, ["a", "b"]),
        ({"status": "finished"}, ["a", "b"]),
        ({"final_loss": None}, ["d"]),
        ({"created_at": {"gte": "2026-01-03T00:00:00Z"}}, ["c", "d"]),
        ({"batch_size": "64"}, ["a", "c"]),
    ],
)
def test_operators_on_typed_columns(runs, filters, expected):
    assert sorted(ids(store.query_runs(filters))) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"config.training.gradient_accumulation_steps": {"gt": 4}}, ["b", "c"]),
        ({"config.training.gradient_accumulation_steps": 16}, ["c"]),
        ({"summary.train/loss": {"lt": 0.5}}, ["a"]),
        ({"summary.train/loss": {"max": 0.5}}, ["a", "c"]),
        ({"summary._wandb.runtime": {"gte": 64}}, ["a", "c"]),
        ({"config.scheduler": "linear"}, ["c"]),
        ({"config.scheduler": {"like": "cos%"}}, ["a", "b", "d"]),
        ({"config.experience_replay": True}, ["a"]),
        ({"config.experience_replay": {"ne": True}}, ["b", "c", "d"]),
        ({"config.training.gradient_method": {"in": ["mgda", "cagrad"]}}, ["a", "b", "d"]),
        ({"summary.train/loss": None}, ["d"]),
        ({"config.missing.path": {"gt": 0}}, []),
    ],
)
def test_any_json_field_by_path(runs, filters, expected):
    assert sorted(ids(store.query_runs(filters))) == expected


def test_numbers_in_json_compare_as_numbers_not_text(runs):
    # As text "16" < "4"; as numbers it is not.
    assert sorted(ids(store.query_runs({"config.training.gradient_accumulation_steps": {"gte": 4}}))) == [
        "a",
        "b",
        "c",
    ]


def test_a_number_filter_skips_json_values_that_are_not_numbers(db):
    store.insert_run("text", config_dict={"x": "9"})
    store.insert_run("nan", config_dict={"x": float("nan")})
    store.insert_run("num", config_dict={"x": 9})

    assert ids(store.query_runs({"config.x": {"gt": 1}})) == ["num"]


def test_order_by_columns_and_json_paths_with_a_run_id_tiebreak(runs):
    assert ids(store.query_runs(order_by="batch_size")) == ["b", "a", "c", "d"]
    assert ids(store.query_runs(order_by="-config.training.gradient_accumulation_steps")) == [
        "c",
        "b",
        "a",
        "d",
    ]
    assert ids(store.query_runs(order_by="summary.train/loss")) == ["a", "c", "b", "d"]
    assert ids(store.query_runs(order_by=["gradient_method", "-batch_size"])) == ["d", "a", "b", "c"]


def test_limit_and_columns(runs):
    result = store.query_runs(order_by="run_id", limit=2, columns=["run_id", "batch_size"])

    assert result == [{"run_id": "a", "batch_size": 64}, {"run_id": "b", "batch_size": 32}]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "blue"}, "unknown field 'colour'"),
        ({"batch_size": {"between": 1}}, "unknown operator 'between'"),
        ({"batch_size": "big"}, "batch_size compares with numbers"),
        ({"status": "exploded"}, "unknown status"),
        ({"config.": 1}, "unknown field"),
        ({'config.a"b': 1}, "invalid JSON path"),
        ({"gradient_method": {"in": "mgda"}}, "needs a list"),
        ({"summary.train/loss": {"gt": [1]}}, "compares with a number"),
        ({"learning_rate": {"gt": float("nan")}}, "cannot be compared"),
        ("gradient_method=mgda", "filters must be a mapping"),
    ],
)
def test_bad_filters_raise_a_value_error_naming_the_problem(runs, filters, message):
    with pytest.raises(ValueError, match=message):
        store.query_runs(filters)


def test_bad_order_and_limit_are_refused(runs):
    with pytest.raises(ValueError, match="unknown field 'nope'"):
        store.query_runs(order_by="-nope")
    with pytest.raises(ValueError, match="limit"):
        store.query_runs(limit=0)


def test_user_input_is_never_pasted_into_sql(runs):
    hostile = "x'); DROP TABLE training_runs; --"

    assert store.query_runs({"run_name": hostile}) == []
    assert store.query_runs({f"config.{hostile}": 1}) == []
    assert len(store.query_runs()) == 4


def test_iter_runs_streams_every_matching_run(runs):
    assert [r["run_id"] for r in store.iter_runs({"gradient_method": "mgda"}, batch_size=1)] == ["a", "b"]
