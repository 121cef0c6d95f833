"""The filter language: its parser, its errors, and its SQL on both databases, checked against
a Python evaluator of the same grammar and three-valued logic."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import store
from store.filters import All, Any_, Comparison, FilterError, Not, compile_filter, parse
from testkit.factory import generate_runs, load_record
from tests.stalled import backdate_runs

# Parsing


def shape(node: Any) -> Any:
    """A parsed filter as nested tuples: ("and", ...), ("or", ...), ("not", x), (field, op, values)."""
    if isinstance(node, All):
        return ("and", *map(shape, node.items))
    if isinstance(node, Any_):
        return ("or", *map(shape, node.items))
    if isinstance(node, Not):
        return ("not", shape(node.item))
    assert isinstance(node, Comparison)
    return (node.target.name, node.op, node.values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("batch_size = 64", ("batch_size", "=", (64,))),
        ("batch_size != 64", ("batch_size", "!=", (64,))),
        ("batch_size < 64", ("batch_size", "<", (64,))),
        ("batch_size <= 64", ("batch_size", "<=", (64,))),
        ("batch_size > 64", ("batch_size", ">", (64,))),
        ("batch_size >= 64", ("batch_size", ">=", (64,))),
        ("batch_size>=64", ("batch_size", ">=", (64,))),
        ("run_name like 'mgda-%'", ("run_name", "like", ("mgda-%",))),
        ("run_name ILIKE 'MGDA-%'", ("run_name", "ilike", ("MGDA-%",))),
        ("gradient_method in ('mgda', 'pcgrad')", ("gradient_method", "in", ("mgda", "pcgrad"))),
        ("gradient_method NOT IN ('mgda')", ("gradient_method", "not in", ("mgda",))),
        ("final_loss is null", ("final_loss", "is null", ())),
        ("final_loss Is Not Null", ("final_loss", "is not null", ())),
        ("learning_rate > 1e-4", ("learning_rate", ">", (1e-4,))),
        ("learning_rate > .5", ("learning_rate", ">", (0.5,))),
        ("learning_rate > -2.5E3", ("learning_rate", ">", (-2500.0,))),
        ("batch_size > -3", ("batch_size", ">", (-3,))),
        ("config.training.batch_size = 64", ("config.training.batch_size", "=", (64,))),
        ("config.experience_replay = TRUE", ("config.experience_replay", "=", (True,))),
        ("config.experience_replay != false", ("config.experience_replay", "!=", (False,))),
        ("summary.train/loss < 0.5", ("summary.train/loss", "<", (0.5,))),
        ("summary.`odd key` = 'it''s'", ("summary.odd key", "=", ("it's",))),
        ("summary.`a``b`.c = 1", ("summary.a`b.c", "=", (1,))),
        ("progress.train/loss < 1", ("progress.train/loss", "<", (1,))),
        ("objective.COMT_activity.raw_mean > 0.8", ("objective.COMT_activity.raw_mean", ">", (0.8,))),
        ("objective.`odd.name`.weight = 1", ("objective.odd.name.weight", "=", (1.0,))),
        ("status = 'finished'", ("status", "=", ("completed",))),
        ("stalled = true", ("stalled", "=", (True,))),
        ("stalled in (false)", ("stalled", "in", (False,))),
        ("created_at >= '2026-11-30'", ("created_at", ">=", (datetime(2026, 11, 30, tzinfo=UTC),))),
        ("not batch_size = 64", ("not", ("batch_size", "=", (64,)))),
        ("NOT not batch_size = 64", ("not", ("not", ("batch_size", "=", (64,))))),
        ("(batch_size = 64)", ("batch_size", "=", (64,))),
        (
            "batch_size = 1 or batch_size = 2 and batch_size = 3",
            ("or", ("batch_size", "=", (1,)), ("and", ("batch_size", "=", (2,)), ("batch_size", "=", (3,)))),
        ),
        (
            "(batch_size = 1 OR batch_size = 2) AnD not (seed < 3)",
            (
                "and",
                ("or", ("batch_size", "=", (1,)), ("batch_size", "=", (2,))),
                ("not", ("seed", "<", (3,))),
            ),
        ),
        (" \n batch_size\t=\n64 ", ("batch_size", "=", (64,))),
    ],
)
def test_each_production_parses(text, expected):
    assert shape(parse(text)) == expected


def test_a_blank_filter_is_no_filter():
    assert parse("") is None
    assert parse("  \n ") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batchsize = 64", "unknown field 'batchsize' at 1:1; did you mean 'batch_size'?"),
        ("Status = 'completed'", "unknown field 'Status' at 1:1; did you mean 'status'?"),
        (
            "sumary.train/loss < 1",
            "unknown field 'sumary.train/loss' at 1:1; did you mean 'summary.train/loss'?",
        ),
        (
            "zzz = 1",
            "unknown field 'zzz' at 1:1; expected a typed column (status, batch_size...) or a path "
            "starting with config., summary., progress. or objective.",
        ),
        (
            "batch_size = 1\n  and bogus_field = 2",
            "unknown field 'bogus_field' at 2:7; expected a typed column (status, batch_size...) or a "
            "path starting with config., summary., progress. or objective.",
        ),
        (
            "objective.COMT.raw_meen > 1",
            "unknown objective statistic 'raw_meen' at 1:1; did you mean 'raw_mean'?",
        ),
        (
            "objective.COMT.best > 1",
            "unknown objective statistic 'best' at 1:1; expected one of raw_mean, normalized_mean, raw_std, "
            "normalized_std, weight",
        ),
        (
            "objective.COMT > 1",
            "expected objective.NAME.STAT in 'objective.COMT' at 1:1; STAT is one of raw_mean, "
            "normalized_mean, raw_std, normalized_std, weight; a NAME with a dot goes in backticks",
        ),
        ("batch_size == 64", "expected a value (a number, a 'string', true or false), found '=' at 1:13"),
        (
            "batch_size >",
            "expected a value (a number, a 'string', true or false), found end of filter at 1:13",
        ),
        (
            "batch_size",
            "expected an operator (= != < <= > >= like ilike in, not in, is null, is not null), "
            "found end of filter at 1:11",
        ),
        ("batch_size is 3", "expected 'null', found '3' at 1:15"),
        ("batch_size is not 3", "expected 'null', found '3' at 1:19"),
        ("batch_size not 3", "expected 'in', found '3' at 1:16"),
        ("batch_size in 3", "expected '(' and a list of values, found '3' at 1:15"),
        ("batch_size in (3 4)", "expected ',' or ')', found '4' at 1:18"),
        ("batch_size in ()", "expected a value (a number, a 'string', true or false), found ')' at 1:16"),
        ("(batch_size = 1", "expected ')', found end of filter at 1:16"),
        ("batch_size = 1)", "expected 'and', 'or' or the end of the filter, found ')' at 1:15"),
        ("batch_size = 1 seed = 2", "expected 'and', 'or' or the end of the filter, found 'seed' at 1:16"),
        ("batch_size = 1 and", "expected a field, 'not' or '(', found end of filter at 1:19"),
        ("and", "expected a field, 'not' or '(', found 'and' at 1:1"),
        ("= 1", "expected a field, 'not' or '(', found '=' at 1:1"),
        ("config.x = null", "null is not a value at 1:12; use 'is null' or 'is not null'"),
        ("run_name = 'abc", "unterminated string at 1:12; close it with '"),
        ("summary.`odd key = 1", "unterminated quoted key at 1:9; close it with `"),
        ('config.x = "a"', "unexpected character '\"' at 1:12; strings go in single quotes"),
        (
            "summary.a-b = 1",
            "unexpected character '-' at 1:10; a key with characters other than letters, digits, _ and / "
            "goes in backticks",
        ),
        ("# comment", "unexpected character '#' at 1:1"),
        ("config. = 1", "expected a key after '.' at 1:8"),
        ("config..a = 1", "expected a key after '.' at 1:8"),
        ('config.`a"b` = 1', "a key with a double quote cannot be queried in 'config.a\"b' at 1:1"),
        ("run_name = 'a\x00'", "string contains a NUL character at 1:12"),
        ("learning_rate < 1e999", "number 1e999 is out of range at 1:17"),
        ("batch_size = 'a'", "batch_size compares with numbers, not 'a' at 1:14"),
        ("batch_size = true", "batch_size compares with numbers, not true at 1:14"),
        ("run_name = 3", "run_name compares with strings, not 3 at 1:12"),
        (
            "objective.QED.raw_mean > 'high'",
            "objective.QED.raw_mean compares with numbers, not 'high' at 1:26",
        ),
        (
            "created_at > 3",
            "created_at compares with times ('2026-11-30T12:00:00Z'), not 3 at 1:14",
        ),
        ("created_at > 'yesterday'", "created_at is not an ISO-8601 time: 'yesterday' at 1:14"),
        (
            "batch_size = 99999999999",
            "99999999999 is out of the range of batch_size (-2147483648 to 2147483647) at 1:14",
        ),
        (
            "seed > -9223372036854775809",
            "-9223372036854775809 is out of the range of seed (-9223372036854775808 to 9223372036854775807) at 1:8",
        ),
        ("learning_rate < " + "9" * 400, "9" * 400 + " is out of the range of learning_rate at 1:17"),
        ("status = 'finised'", "unknown status 'finised' at 1:10; did you mean 'finished'?"),
        (
            "status in ('completed', 'zzz')",
            "unknown status 'zzz' at 1:25; expected one of unknown, launched, running, completed, failed, crashed, "
            "killed, preempted",
        ),
        (
            "config.x in (1, 'a')",
            "the values of an 'in' list must all be numbers, all strings or all booleans at 1:10",
        ),
        ("config.x < true", "booleans compare only with = and !=, not < at 1:12"),
        ("stalled = 1", "stalled compares with true or false, not 1 at 1:11"),
        ("stalled = 'yes'", "stalled compares with true or false, not 'yes' at 1:11"),
        ("stalled >= true", "booleans compare only with = and !=, not >= at 1:12"),
        ("stalled like 'x'", "like needs a text field; stalled is not one at 1:14"),
        ("stall = true", "unknown field 'stall' at 1:1; did you mean 'stalled'?"),
        ("run_name like 3", "like needs a 'pattern' string, not 3 at 1:15"),
        ("batch_size like '6%'", "like needs a text field; batch_size is not one at 1:17"),
        (
            "objective.QED.raw_mean ilike '1%'",
            "ilike needs a text field; objective.QED.raw_mean is not one at 1:30",
        ),
        ("run_name like 'a\\'", "a pattern cannot end with a lone escape character \\ at 1:15"),
        ("(" * 101 + "batch_size = 1" + ")" * 101, "filter nested deeper than 100 levels at 1:101"),
        ("not " * 101 + "batch_size = 1", "filter nested deeper than 100 levels at 1:401"),
    ],
)
def test_errors_name_the_position_and_what_was_expected(text, message):
    with pytest.raises(FilterError) as raised:
        parse(text)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_an_error_carries_its_line_and_column():
    with pytest.raises(FilterError) as raised:
        parse("status = 'completed'\nand batchsize = 64")
    assert (raised.value.line, raised.value.column, raised.value.position) == (2, 5, 25)
    assert raised.value.hint == "did you mean 'batch_size'?"


def test_a_filter_must_be_a_string():
    with pytest.raises(FilterError, match="a filter must be a string, not int"):
        parse(3)  # type: ignore[arg-type]


# On the databases


@pytest.fixture
def runs(db):
    """Four runs with typed values, nested configs, odd summaries and objectives."""
    rows = [
        ("a", "mgda", 64, 1e-3, "2026-01-01T00:00:00Z", "completed", "Alpha"),
        ("b", "mgda", 32, 1e-4, "2026-01-02T00:00:00Z", "crashed", "beta"),
        ("c", "pcgrad", 64, 3e-4, "2026-01-03T00:00:00Z", "completed", "50%_off"),
        ("d", None, None, None, "2026-01-04T00:00:00Z", "running", None),
    ]
    for run_id, method, batch, lr, created, _, name in rows:
        config: dict[str, Any] = {"tags": ["sweep"]}
        if method is not None:
            config["training"] = {"gradient_method": method, "batch_size": batch, "learning_rate": lr}
        if name is not None:
            config["name"] = name
            config["replay"] = run_id == "a"
        store.insert_run(run_id, config_dict=config, created_at=created, run_name=name)
    summaries = {
        "a": {"train/loss": 0.3, "eval/igd": math.nan, "big": 1e17, "odd key": 5, "grad": math.inf, "n": 7},
        "b": {"train/loss": 0.7, "eval/igd": 0.1, "big": 3, "grad": 2.0, "n": "seven"},
        "c": {"train/loss": None, "eval/igd": 0.2, "zero": -0.0, "n": {"$float": "x"}},
    }
    for run_id, _, _, _, _, status, _ in rows:
        store.update_run_status(run_id, status, final_metrics_json=summaries.get(run_id))
    for run_id, objective, weight, value in [
        ("a", "COMT", 1.0, 0.9),
        ("b", "COMT", None, 0.5),
        ("c", "COMT", 2.0, None),
        ("a", "DRD5", 1.0, 0.8),
        ("b", "DRD5", 1.0, 0.9),
    ]:
        store.insert_objective(run_id, objective, weight=weight)
        if value is not None:
            store.update_objective_metric(run_id, objective, "raw_mean", value)
    return db


def matched(where: str) -> list[str]:
    return sorted(run["run_id"] for run in store.query_runs(where=where, limit=None))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("", ["a", "b", "c", "d"]),
        ("batch_size = 64", ["a", "c"]),
        ("batch_size != 64", ["b"]),
        ("not batch_size = 64", ["b"]),
        ("batch_size is null", ["d"]),
        ("not batch_size is null", ["a", "b", "c"]),
        ("batch_size is not null", ["a", "b", "c"]),
        ("learning_rate >= 3e-4", ["a", "c"]),
        ("learning_rate < 1", ["a", "b", "c"]),
        ("gradient_method in ('pcgrad', 'nash')", ["c"]),
        ("gradient_method not in ('pcgrad', 'nash')", ["a", "b"]),
        ("not gradient_method in ('pcgrad')", ["a", "b"]),
        ("status = 'finished'", ["a", "c"]),
        ("status != 'completed'", ["b", "d"]),
        ("run_name like 'beta'", ["b"]),
        ("run_name like 'BETA'", []),
        ("run_name ilike 'BETA'", ["b"]),
        ("run_name like '%\\%\\_%'", ["c"]),
        ("run_name like '_eta'", ["b"]),
        ("run_name not in ('beta')", ["a", "c"]),
        ("run_name < 'a'", ["a", "c"]),
        ("created_at > '2026-01-02T00:00:00Z'", ["c", "d"]),
        ("created_at >= '2026-01-02'", ["b", "c", "d"]),
        ("created_at in ('2026-01-01T00:00:00+00:00', '2026-01-03T01:00:00+01:00')", ["a", "c"]),
        ("batch_size = 64 and status = 'completed' or run_id = 'd'", ["a", "c", "d"]),
        ("batch_size = 64 and (status = 'crashed' or run_id = 'c')", ["c"]),
        ("not (batch_size = 64 or batch_size = 32)", []),
        ("not (batch_size = 64 and status = 'completed')", ["b", "d"]),
        ("config.training.batch_size > 32", ["a", "c"]),
        ("not config.training.batch_size > 32", ["b"]),
        ("config.training.gradient_method = 'mgda'", ["a", "b"]),
        ("config.training.gradient_method != 'mgda'", ["c"]),
        ("config.training.batch_size != 'mgda'", []),
        ("config.training.gradient_method > 5", []),
        ("not config.training.gradient_method > 5", []),
        ("config.training is null", ["d"]),
        ("config.training is not null", ["a", "b", "c"]),
        ("config.training = 1", []),
        ("config.tags is null", []),
        ("config.name like '%a'", ["a", "b"]),
        ("config.name like 'a%'", []),
        ("config.name ilike 'a%'", ["a"]),
        ("not config.name like '%a'", ["c"]),
        ("config.name in ('Alpha', 'beta')", ["a", "b"]),
        ("config.name not in ('Alpha', 'beta')", ["c"]),
        ("config.replay = true", ["a"]),
        ("config.replay = false", ["b", "c"]),
        ("config.replay != true", ["b", "c"]),
        ("not config.replay = true", ["b", "c"]),
        ("config.replay in (true)", ["a"]),
        ("config.replay = 1", []),
        ("summary.train/loss < 0.5", ["a"]),
        ("not summary.train/loss < 0.5", ["b"]),
        ("summary.train/loss is null", ["c", "d"]),
        ("summary.eval/igd > 0", ["b", "c"]),
        ("not summary.eval/igd > 0", []),
        ("summary.eval/igd is null", ["a", "d"]),
        ("summary.eval/igd != 0.1", ["c"]),
        ("summary.grad > 1", ["b"]),
        ("summary.grad is null", ["a", "c", "d"]),
        ("summary.big > 1e16", ["a"]),
        ("summary.big = 100000000000000000", ["a"]),
        ("summary.big in (3, 4)", ["b"]),
        ("summary.zero = 0", ["c"]),
        ("summary.`odd key` = 5", ["a"]),
        ("summary.`odd key` != 5", []),
        ("summary.n = 7", ["a"]),
        ("summary.n = 'seven'", ["b"]),
        ("summary.n != 7", []),
        ("summary.n is null", ["d"]),
        ("summary.missing = 1 or batch_size = 32", ["b"]),
        ("not (summary.missing = 1 or batch_size = 32)", []),
        ("not (summary.missing = 1 and batch_size = 32)", ["a", "c"]),
        ("objective.COMT.raw_mean > 0.8", ["a"]),
        ("not objective.COMT.raw_mean > 0.8", ["b"]),
        ("objective.COMT.raw_mean <= 0.8", ["b"]),
        ("objective.COMT.raw_mean is null", ["c", "d"]),
        ("objective.COMT.raw_mean is not null", ["a", "b"]),
        ("objective.COMT.weight is null", ["b", "d"]),
        ("objective.COMT.weight in (1, 2)", ["a", "c"]),
        ("objective.COMT.weight not in (1)", ["c"]),
        ("objective.COMT.raw_mean > 0.8 and objective.DRD5.raw_mean > 0.7", ["a"]),
        ("objective.COMT.raw_mean > 0.8 or objective.DRD5.raw_mean > 0.85", ["a", "b"]),
        ("not (objective.COMT.raw_mean > 0.8 or objective.DRD5.raw_mean > 0.85)", []),
        ("objective.NOPE.raw_mean > 0 or not objective.NOPE.raw_mean > 0", []),
        ("objective.NOPE.raw_mean is null", ["a", "b", "c", "d"]),
        ("objective.`COMT`.raw_mean = 0.9", ["a"]),
    ],
)
def test_filters_match_on_both_databases(runs, where, expected):
    assert matched(where) == expected


def test_stalled_runs_are_running_runs_without_an_event_for_stale_after_seconds(runs):
    store.insert_run("e", run_name="fresh")
    store.update_run_status("e", "running")
    store.insert_run("f", run_name="old and done")
    store.update_run_status("f", "completed")
    backdate_runs(["d", "f"], 901)
    assert matched("stalled = true") == ["d"]
    assert matched("stalled = false") == ["a", "b", "c", "e", "f"]
    assert matched("stalled != true") == ["a", "b", "c", "e", "f"]
    assert matched("not stalled = true") == ["a", "b", "c", "e", "f"]
    assert matched("stalled in (true, false)") == ["a", "b", "c", "d", "e", "f"]
    assert matched("stalled not in (true, false)") == []
    assert matched("stalled is null") == []
    assert matched("stalled is not null or run_id = 'x'") == ["a", "b", "c", "d", "e", "f"]
    assert matched("stalled = true or batch_size = 32") == ["b", "d"]
    assert [run["stalled"] for run in store.query_runs(columns=["stalled"], order_by="run_id")] == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    store.configure_stale_after(902)
    try:
        assert matched("stalled = true") == []
    finally:
        store.configure_stale_after(900)
    # An event, however old the run, makes it live again.
    store.record_progress("d", 10, {"train/loss": 0.5})
    assert matched("stalled = true") == []


def test_where_and_the_dict_filters_combine(runs):
    assert ids(store.query_runs({"status": "completed"}, where="batch_size = 64 or batch_size is null")) == [
        "c",
        "a",
    ]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["run_id"] for row in rows]


def test_where_orders_and_limits_as_before(runs):
    assert ids(store.query_runs(where="batch_size is not null", order_by="batch_size", limit=2)) == ["b", "a"]


def test_an_integer_beyond_a_column_is_refused_before_the_database(runs):
    with pytest.raises(FilterError, match="out of the range of batch_size"):
        store.query_runs(where="batch_size < 3000000000")


def test_json_numbers_beyond_64_bits_compare(runs):
    store.update_run_status("d", "running", final_metrics_json={"hash": 2**70, "huge": 10**400})
    assert matched(f"summary.hash = {2**70}") == ["d"]
    assert matched("summary.huge > 1e300") == ["d"]
    # Exactly on PostgreSQL; SQLite holds such numbers as doubles.
    assert matched(f"summary.hash > {2**70 - 1}") == (["d"] if runs == "postgresql" else [])


def test_iter_runs_takes_a_filter(runs):
    assert sorted(run["run_id"] for run in store.iter_runs(where="status = 'completed'")) == ["a", "c"]


def test_compile_filter_serves_other_statements(runs):
    from sqlalchemy import func, select

    from store.database import read_transaction
    from store.models import RunObjective, TrainingRun

    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        count = session.scalar(
            select(func.count()).select_from(TrainingRun).where(compile_filter("batch_size = 64", dialect))
        )
        matching = select(TrainingRun.run_id).where(compile_filter("objective.DRD5.raw_mean > 0.85", dialect))
        objectives = session.scalars(
            select(RunObjective.objective_name)
            .where(RunObjective.run_id.in_(matching))
            .order_by(RunObjective.objective_name)
        ).all()
    assert count == 2
    assert objectives == ["COMT", "DRD5"]


def test_compare_gradient_methods_takes_a_filter(runs):
    compared = store.compare_gradient_methods("DRD5", status=None, where="run_name like 'b%'")
    assert [(c["gradient_method"], c["num_runs"], c["best_run_id"]) for c in compared] == [("mgda", 1, "b")]
    everything = store.compare_gradient_methods("DRD5", status=None, where="  ")
    assert [(c["gradient_method"], c["num_runs"]) for c in everything] == [("mgda", 2)]


def test_get_objective_statistics_takes_a_filter(runs):
    statistics = store.get_objective_statistics(
        "COMT", status=None, where="not objective.DRD5.raw_mean > 0.85"
    )
    assert (statistics["count"], statistics["median"], statistics["best_run_id"]) == (1, 0.9, "a")


def test_get_stats_takes_a_filter_and_gives_the_crash_rate_by_method(runs):
    stats = store.get_stats(where="gradient_method = 'mgda' or gradient_method is null")
    assert stats["total_runs"] == 3
    assert stats["runs_by_status"] == {"running": 1, "completed": 1, "crashed": 1}
    assert stats["runs_by_gradient_method"] == {"mgda": 2, None: 1}
    assert stats["crash_rate_by_gradient_method"] == {"mgda": 0.5, None: 0.0}
    assert stats["num_objectives"] == 2
    assert stats["oldest_run_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert stats["newest_run_at"] == datetime(2026, 1, 4, tzinfo=UTC)
    assert store.get_stats(where="run_id = 'nope'")["num_objectives"] == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: store.query_runs(where="batchsize = 1"),
        lambda: list(store.iter_runs(where="batchsize = 1")),
        lambda: store.compare_gradient_methods("COMT", where="batchsize = 1"),
        lambda: store.get_objective_statistics("COMT", where="batchsize = 1"),
        lambda: store.get_stats(where="batchsize = 1"),
    ],
)
def test_every_read_function_reports_a_bad_filter(runs, call):
    with pytest.raises(FilterError, match="unknown field 'batchsize' at 1:1; did you mean 'batch_size'"):
        call()


def test_columns_project_typed_fields_json_paths_and_objectives(runs):
    rows = store.query_runs(
        where="run_id in ('a', 'c', 'd')",
        order_by="run_id",
        limit=None,
        columns=[
            "run_id",
            "batch_size",
            "config.training",
            "config.name",
            "summary.train/loss",
            "summary.eval/igd",
            "summary.big",
            "summary.`odd key`",
            "objective.COMT.raw_mean",
            "objective.COMT.weight",
            "objective.DRD5.raw_mean",
            "run_id",
        ],
    )

    assert [list(row) for row in rows] == [list(rows[0])] * 3
    assert list(rows[0]) == [
        "run_id",
        "batch_size",
        "config.training",
        "config.name",
        "summary.train/loss",
        "summary.eval/igd",
        "summary.big",
        "summary.`odd key`",
        "objective.COMT.raw_mean",
        "objective.COMT.weight",
        "objective.DRD5.raw_mean",
    ]
    a, c, d = rows
    assert a["config.training"] == {"gradient_method": "mgda", "batch_size": 64, "learning_rate": 1e-3}
    assert (a["config.name"], c["config.name"], d["config.name"]) == ("Alpha", "50%_off", None)
    assert (a["summary.train/loss"], c["summary.train/loss"], d["summary.train/loss"]) == (0.3, None, None)
    assert math.isnan(a["summary.eval/igd"])
    assert (a["summary.big"], a["summary.`odd key`"]) == (1e17, 5)
    assert [(r["objective.COMT.raw_mean"], r["objective.COMT.weight"]) for r in rows] == [
        (0.9, 1.0),
        (None, 2.0),
        (None, None),
    ]
    assert [r["objective.DRD5.raw_mean"] for r in rows] == [0.8, None, None]


def test_whole_runs_have_every_field(runs):
    (run,) = store.query_runs(where="run_id = 'b'")
    assert run == {name: value for name, value in store.get_run("b").items() if name != "objectives"}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["batchsize"], "unknown field 'batchsize' at 1:1; did you mean 'batch_size'?"),
        (["objective.QED.mean"], "unknown objective statistic 'mean' at 1:1; did you mean 'raw_mean'?"),
        (["batch_size = 1"], "'batch_size = 1' is not a field at 1:1"),
        ([], "columns must be a non-empty list of field names, not []"),
        ("run_id", "columns must be a non-empty list of field names, not 'run_id'"),
    ],
)
def test_bad_columns_are_refused_naming_them(runs, columns, message):
    with pytest.raises(ValueError) as raised:
        store.query_runs(columns=columns)
    assert str(raised.value) == message


# Generated filters against a Python evaluator

UNKNOWN = None


class Value:
    """A field's value as the language sees it: its kind (or missing, or other), and the value."""

    def __init__(self, kind: str, value: Any = None) -> None:
        self.kind = kind
        self.value = value


def _json_value(value: Any) -> Value:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Value("missing")
    if isinstance(value, bool):
        return Value("boolean", value)
    if isinstance(value, int | float):
        return Value("number", value)
    if isinstance(value, str):
        return Value("string", value)
    return Value("other")


def field_value(run: dict[str, Any], field: str) -> Value:
    head, _, rest = field.partition(".")
    if head == "objective":
        name, stat = _split_objective(rest)
        found = [o for o in run["objectives"] if o["objective_name"] == name]
        return Value("missing") if not found or found[0][stat] is None else Value("number", found[0][stat])
    if field == "stalled":
        return Value("boolean", store.is_stalled(run))
    if rest:
        node = run[{"config": "config_json", "summary": "final_metrics_json"}[head]]
        for key in _keys(rest):
            if not isinstance(node, dict) or key not in node:
                return Value("missing")
            node = node[key]
        return _json_value(node)
    value = run[head]
    if value is None:
        return Value("missing")
    if isinstance(value, datetime):
        return Value("time", value)
    return _json_value(value)


def _split_objective(rest: str) -> tuple[str, str]:
    name, stat = _keys(rest)
    return name, stat


def _keys(path: str) -> list[str]:
    return [
        quoted.replace("``", "`") if quoted else bare
        for quoted, bare in re.findall(r"`((?:[^`]|``)*)`|([^.`]+)", path)
    ]


def like(value: str, pattern: str, ignore_case: bool) -> bool:
    regex = ""
    escaped = False
    for char in pattern:
        if escaped:
            regex += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def evaluate(node: tuple[Any, ...], run: dict[str, Any]) -> bool | None:
    """Evaluate a generated filter on a run in three-valued logic: True, False or None (unknown)."""
    kind = node[0]
    if kind == "not":
        inner = evaluate(node[1], run)
        return None if inner is None else not inner
    if kind in ("and", "or"):
        values = [evaluate(item, run) for item in node[1:]]
        decisive = kind == "or"
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    _, field, op, literals = node
    value = field_value(run, field)
    if op in ("is null", "is not null"):
        return (value.kind == "missing") == (op == "is null")
    if value.kind in ("missing", "other"):
        return UNKNOWN
    literal_kind = _json_value(literals[0]).kind if not isinstance(literals[0], datetime) else "time"
    if literal_kind != value.kind:
        return UNKNOWN
    if op in ("in", "not in"):
        return (value.value in literals) == (op == "in")
    (literal,) = literals
    if op in ("like", "ilike"):
        return like(value.value, literal, op == "ilike")
    return {
        "=": value.value == literal,
        "!=": value.value != literal,
        "<": value.value < literal,
        "<=": value.value <= literal,
        ">": value.value > literal,
        ">=": value.value >= literal,
    }[op]


def render_value(value: Any, draw: Any) -> str:
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "TRUE", "True"] if value else ["false", "FALSE"]))
    if isinstance(value, datetime):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def render(node: tuple[Any, ...], draw: Any) -> str:
    keyword = lambda word: draw(st.sampled_from([word, word.upper(), word.capitalize()]))  # noqa: E731
    kind = node[0]
    if kind == "not":
        return f"{keyword('not')} ({render(node[1], draw)})"
    if kind in ("and", "or"):
        return f" {keyword(kind)} ".join(f"({render(item, draw)})" for item in node[1:])
    _, field, op, literals = node
    if op in ("is null", "is not null"):
        return f"{field} {' '.join(keyword(word) for word in op.split())}"
    if op in ("in", "not in"):
        values = ", ".join(render_value(v, draw) for v in literals)
        return f"{field} {' '.join(keyword(word) for word in op.split())} ({values})"
    spelled = keyword(op) if op.isalpha() else op
    return f"{field} {spelled} {render_value(literals[0], draw)}"


# field -> the kinds of literal it takes (typed columns take one kind only)
TYPED_FIELDS = {
    "status": "string",
    "gradient_method": "string",
    "run_name": "string",
    "optimizer": "string",
    "batch_size": "number",
    "learning_rate": "number",
    "final_loss": "number",
    "seed": "number",
    "num_objectives": "number",
    "created_at": "time",
    "completed_at": "time",
    "stalled": "boolean",
}
JSON_FIELDS = [
    "config.training.batch_size",
    "config.training.grad_clip",
    "config.training.ema_decay",
    "config.training.experience_replay",
    "config.training.optimizer",
    "config.training.gradient_method",
    "config.model.name",
    "config.infra.spot",
    "config.tags",
    "config.reward.clip",
    "config.missing",
    "summary.train/loss",
    "summary.eval/igd",
    "summary.train/grad_norm",
    "summary.eval/pareto_size",
    "summary.`odd key`",
    "summary._wandb.runtime",
    "summary.flag",
]
OBJECTIVE_FIELDS = [
    f"objective.{name}.{stat}"
    for name in ("COMT_activity", "DRD5_activity", "QED")
    for stat in ("raw_mean", "raw_std", "weight")
]


class Runs(list):  # type: ignore[type-arg]
    """Runs as the store returns them; shown by their number alone in hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<{len(self)} runs>"


@pytest.fixture
def generated_runs(db):
    """Twelve runs from the factory, some with NaN, infinities, big floats and odd keys added, a
    quarter of them running, half of those stalled."""
    stalled = []
    for index, record in enumerate(generate_runs(12, seed=17)):
        if index % 4 == 3:
            record["state"] = "running"
            if index % 8 == 3:
                stalled.append(record["run_id"])
        summary = record["summary"]
        if summary is not None:
            if index % 3 == 0:
                summary["train/loss"] = math.nan
            if index % 4 == 1:
                summary["train/grad_norm"] = -math.inf
            if index % 5 == 2:
                summary["eval/pareto_size"] = 1e17 if index % 2 else "many"
            summary["odd key"] = index % 3 if index % 2 else f"k{index % 3}"
            summary["flag"] = [True, False, None, 1][index % 4]
        load_record(record)
    backdate_runs(stalled, 3600)
    runs = Runs(store.get_run(run_id) for run_id in sorted(r["run_id"] for r in store.query_runs(limit=None)))
    for run in runs:
        run["objectives"] = store.get_run_objectives(run["run_id"])
    return runs


def observed(runs: list[dict[str, Any]], field: str) -> list[Any]:
    values = []
    for run in runs:
        value = field_value(run, field)
        if value.kind not in ("missing", "other"):
            values.append(value.value)
    return values


@st.composite
def literal_for(draw: Any, runs: list[dict[str, Any]], field: str, kind: str) -> Any:
    seen = [v for v in observed(runs, field) if (_json_value(v).kind if kind != "time" else "time") == kind]
    if kind == "time":
        base = draw(st.sampled_from(seen)) if seen else datetime(2026, 1, 1, tzinfo=UTC)
        return base + timedelta(seconds=draw(st.sampled_from([-1, 0, 0, 1, 86400])))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "number":
        options = [st.integers(-5, 300), st.floats(-10, 10, allow_nan=False)]
        if seen:
            options.append(st.sampled_from(seen))
            options.append(st.sampled_from(seen).map(lambda v: v + 1e-9 if isinstance(v, float) else v + 1))
        return draw(st.one_of(*options))
    strings = st.text(alphabet="abcABC_%'\\ -k0", max_size=6)
    if seen:
        strings = st.one_of(st.sampled_from(seen), strings)
    return draw(strings)


@st.composite
def pattern_for(draw: Any, runs: list[dict[str, Any]], field: str) -> str:
    seen = [v for v in observed(runs, field) if isinstance(v, str)]
    base = draw(st.sampled_from(seen)) if seen else draw(st.text(alphabet="abc", max_size=4))
    out = []
    for char in base:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            out.append("%")
        elif choice == 1:
            out.append("_")
        elif choice == 2:
            out.append(char.swapcase())
        else:
            out.append("\\" + char if char in "%_\\" else char)
    if draw(st.booleans()):
        out.append("%")
    return "".join(out)


@st.composite
def comparisons(draw: Any, runs: list[dict[str, Any]]) -> tuple[Any, ...]:
    field = draw(st.sampled_from([*TYPED_FIELDS, *JSON_FIELDS, *OBJECTIVE_FIELDS]))
    if field in TYPED_FIELDS:
        kinds = [TYPED_FIELDS[field]]
    elif field.startswith("objective."):
        kinds = ["number"]
    else:
        kinds = ["number", "string", "boolean"]
    kind = draw(st.sampled_from(kinds))
    ops = ["=", "!=", "in", "not in", "is null", "is not null"]
    if kind != "boolean":
        ops += ["<", "<=", ">", ">="]
    if kind == "string":
        ops += ["like", "ilike"]
    op = draw(st.sampled_from(ops))
    if op in ("is null", "is not null"):
        return ("cmp", field, op, ())
    if op.endswith("like"):
        return ("cmp", field, op, (draw(pattern_for(runs, field)),))
    count = draw(st.integers(1, 3)) if op.endswith("in") else 1
    literals = tuple(draw(literal_for(runs, field, kind)) for _ in range(count))
    if field == "status":
        literals = tuple(
            draw(st.sampled_from(["completed", "crashed", "running", "failed", "killed"])) for _ in literals
        )
    return ("cmp", field, op, literals)


def filters(runs: list[dict[str, Any]]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.recursive(
        comparisons(runs),
        lambda inner: st.one_of(
            inner.map(lambda node: ("not", node)),
            st.lists(inner, min_size=2, max_size=3).map(lambda items: ("and", *items)),
            st.lists(inner, min_size=2, max_size=3).map(lambda items: ("or", *items)),
        ),
        max_leaves=6,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_filters_match_what_a_python_evaluator_says(generated_runs, data):
    tree = data.draw(filters(generated_runs))
    text = render(tree, data.draw)
    expected = sorted(run["run_id"] for run in generated_runs if evaluate(tree, run) is True)
    assert matched(text) == expected, text
