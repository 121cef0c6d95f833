"""`training-db runs`, `run`, `compare`, `stats`, `events` and `export`: what a user reads back."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import store
from ingest.cli import main, runs
from store import inbox
from testkit.factory import generate_runs
from tests.webhooks import post_pipeline

RUNS = list(generate_runs(24, seed=7))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def strict_json(text: str) -> Any:
    """Parse JSON that must be strict: a bare NaN or Infinity token fails the test."""

    def refuse(token: str) -> None:
        raise AssertionError(f"output holds the non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def loaded(db: str, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Load the records; wide tables so that no cell is cut."""
    monkeypatch.setenv("COLUMNS", "250")
    store.load_runs(RUNS)
    return RUNS


def ids(records: list[dict[str, Any]]) -> list[str]:
    return sorted(record["run_id"] for record in records)


# --- runs --------------------------------------------------------------------------------------


def test_where_filters_on_columns_and_json_paths(loaded):
    result = invoke(
        "runs",
        "--where",
        "batch_size>=64",
        "--where",
        "config.training.gradient_accumulation_steps>1",
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    expected = [
        r
        for r in loaded
        if r["config"]["training"]["batch_size"] >= 64
        and r["config"]["training"]["gradient_accumulation_steps"] > 1
    ]
    assert expected
    assert sorted(run["run_id"] for run in strict_json(result.output)) == ids(expected)


def test_where_reads_values_as_json_when_they_parse_and_as_strings_otherwise(loaded):
    method = loaded[0]["config"]["training"]["gradient_method"]

    result = invoke("runs", "--where", f"gradient_method={method}", "--where", "summary.train/loss<0.5")
    number = invoke("runs", "--where", "config.training.batch_size=64", "--format", "json")
    string = invoke("runs", "--where", 'config.training.batch_size="64"', "--format", "json")

    expected = [
        r
        for r in loaded
        if r["config"]["training"]["gradient_method"] == method
        and (r["summary"] or {}).get("train/loss", 1) < 0.5
    ]
    assert result.exit_code == 0, result.output
    assert f"{len(expected)} run(s)" in result.output
    assert all(r["run_id"] in result.output for r in expected)
    assert len(strict_json(number.output)) == sum(r["config"]["training"]["batch_size"] == 64 for r in loaded)
    assert strict_json(string.output) == []


def test_columns_order_and_limit_shape_the_csv(loaded):
    result = invoke(
        "runs",
        "--columns",
        "run_id,summary.train/loss,config.training.seed",
        "--where",
        "summary.train/loss<100",
        "--order-by",
        "-summary.train/loss",
        "--limit",
        "3",
        "--format",
        "csv",
    )

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    finished = sorted((r for r in loaded if r["summary"]), key=lambda r: -r["summary"]["train/loss"])[:3]
    assert [row["run_id"] for row in rows] == [r["run_id"] for r in finished]
    assert [float(row["summary.train/loss"]) for row in rows] == [
        r["summary"]["train/loss"] for r in finished
    ]
    assert [int(row["config.training.seed"]) for row in rows] == [
        r["config"]["training"]["seed"] for r in finished
    ]


def test_json_output_writes_times_as_iso_and_nan_as_null(loaded):
    store.update_run_status(
        loaded[0]["run_id"], "completed", final_metrics_json={"_step": 10**9, "eval/igd": math.nan}
    )

    result = invoke(
        "runs",
        "--where",
        f"run_id={loaded[0]['run_id']}",
        "--columns",
        "run_id,created_at,summary.eval/igd",
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    (row,) = strict_json(result.output)
    assert row["summary.eval/igd"] is None
    assert datetime.fromisoformat(row["created_at"]) == store.get_run(loaded[0]["run_id"])["created_at"]


def test_objectives_filter_best_first_with_their_values(loaded):
    result = invoke(
        "runs", "--objective", "COMT_activity>=0.5", "--objective", "COMT_activity<0.95", "--format", "csv"
    )

    expected = store.query_runs_by_objectives({"COMT_activity": {"min": 0.5, "lt": 0.95}})
    assert expected
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["run_id"] for row in rows] == [run["run_id"] for run in expected]
    assert [float(row["objective.COMT_activity.raw_mean"]) for row in rows] == [
        run["objectives"]["COMT_activity"]["raw_mean"] for run in expected
    ]


def test_an_objective_no_run_has_is_named_with_the_closest_names(loaded):
    misspelt = invoke("runs", "--objective", "comt_activty>=0.5")
    unknown = invoke("runs", "--objective", "NOPE>=0.5")
    none_pass = invoke("runs", "--objective", "COMT_activity>=2")

    assert misspelt.exit_code == 1
    assert misspelt.stderr.startswith("Error: no run has the objective 'comt_activty'; did you mean COMT_activity")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("Error: no run has the objective 'NOPE'; ")
    assert len(unknown.stderr.splitlines()) == 1
    assert none_pass.exit_code == 0, none_pass.output
    assert "0 run(s)" in none_pass.output


def test_run_shows_the_latest_progress_metrics(loaded):
    run_id = loaded[0]["run_id"]
    store.update_run_status(run_id, "running")
    store.record_progress(run_id, 7, {"train/loss": 0.25})
    store.record_progress(run_id, 9, {"train/loss": 0.125, "lr": 0.001})

    result = invoke("run", run_id)

    assert result.exit_code == 0, result.output
    assert "progress at step 9" in result.output
    assert re.search(r"│ train/loss +│ 0\.125 +│", result.output)
    assert re.search(r"│ lr +│ 0\.001 +│", result.output)
    assert "0.25" not in result.output[result.output.index("progress at step 9") :].split("config:")[0]


def test_objectives_combine_with_gradient_method_and_status(loaded):
    method = loaded[0]["config"]["training"]["gradient_method"]

    result = invoke(
        "runs",
        "--objective",
        "QED>0",
        "--where",
        f"gradient_method={method}",
        "--where",
        "status=completed",
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.output
    expected = store.query_runs_by_objectives({"QED": {"gt": 0}}, gradient_method=method, status="completed")
    assert [run["run_id"] for run in strict_json(result.output)] == [run["run_id"] for run in expected]


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["--where", "batch_size"], 2, "'batch_size' is not FIELD OP VALUE"),
        (["--where", "batch_size>1", "--where", "batch_size>2"], 2, "batch_size > is given twice"),
        (["--where", "colour=red"], 1, "Error: unknown field 'colour'"),
        (["--objective", "QED=1"], 2, "'QED=1' is not NAME OP NUMBER"),
        (["--objective", "QED>high"], 2, "'high' in 'QED>high' is not a number"),
        (
            ["--objective", "QED>0", "--where", "batch_size>=64"],
            1,
            "--where batch_size does not combine with --objective",
        ),
        (["--objective", "QED>0", "--order-by", "run_id"], 1, "--order-by does not combine with --objective"),
        (["--objective", "QED>0", "--columns", "config.seed"], 1, "column 'config.seed' is not available"),
        (["--columns", "objective.QED.raw_mean"], 1, "column 'objective.QED.raw_mean' needs --objective"),
        (["--limit", "0"], 2, "0 is not in the range x>=1"),
        (["--format", "xml"], 2, "'xml' is not one of 'table', 'json', 'csv'"),
    ],
)
def test_bad_runs_arguments_exit_non_zero_with_the_reason(db, args, code, reason):
    result = invoke("runs", *args)

    assert result.exit_code == code
    assert reason in result.output


# --- run, compare, stats, events ---------------------------------------------------------------


def test_run_shows_fields_objectives_crash_keys_config_and_summary(loaded):
    crashed = next(r for r in loaded if r["crash"])

    result = invoke("run", crashed["run_id"])

    assert result.exit_code == 0, result.output
    run = store.get_run(crashed["run_id"])
    assert f"gradient_method             │ {run['gradient_method']}" in result.output
    assert all(o["objective_name"] in result.output for o in run["objectives"])
    assert all(key in result.output for key in crashed["crash"]["keys"])
    config = result.output[result.output.index("config:\n") + 8 : result.output.index("summary:\n")]
    assert json.loads(config) == crashed["config"]


def test_run_as_json_is_get_run_in_strict_json(loaded):
    result = invoke("run", loaded[1]["run_id"], "--format", "json")

    assert result.exit_code == 0, result.output
    shown = strict_json(result.output)
    run = store.get_run(loaded[1]["run_id"])
    assert shown["objectives"] == json.loads(json.dumps(run["objectives"]))
    assert shown["updated_at"] == run["updated_at"].isoformat()


def test_a_missing_run_exits_1_naming_it(loaded):
    result = invoke("run", "run-nope")

    assert result.exit_code == 1
    assert result.output == "Error: no run run-nope\n"


def test_compare_ranks_gradient_methods_as_the_store_does(loaded):
    table = invoke("compare", "COMT_activity")
    as_json = invoke(
        "compare", "COMT_activity", "--metric", "normalized_mean", "--status", "any", "--format", "json"
    )

    expected = store.compare_gradient_methods("COMT_activity")
    assert table.exit_code == 0, table.output
    positions = [table.output.index(f"│ {row['gradient_method']} ") for row in expected]
    assert positions == sorted(positions)
    assert as_json.exit_code == 0, as_json.output
    assert strict_json(as_json.output) == json.loads(
        json.dumps(store.compare_gradient_methods("COMT_activity", "normalized_mean", None))
    )


def test_compare_with_no_values_says_so(loaded):
    result = invoke("compare", "no_such_objective")

    assert result.exit_code == 1
    assert result.output == "Error: no completed run has a raw_mean for objective no_such_objective\n"


def test_stats_counts_runs_by_status_and_method(loaded):
    as_json = invoke("stats", "--format", "json")
    table = invoke("stats")

    assert as_json.exit_code == 0, as_json.output
    numbers = strict_json(as_json.output)
    assert numbers["total_runs"] == len(loaded)
    assert sum(numbers["runs_by_status"].values()) == len(loaded)
    assert table.exit_code == 0, table.output
    assert f"│ runs       │ {len(loaded)} " in table.output


def test_stats_and_compare_count_runs_never_launched_only_when_asked(loaded):
    store.update_objective_metric("never-launched", "COMT_activity", "raw_mean", 0.5)

    counted = strict_json(invoke("stats", "--format", "json").output)
    every = strict_json(invoke("stats", "--include-unknown", "--format", "json").output)
    compared = strict_json(invoke("compare", "COMT_activity", "--status", "any", "--format", "json").output)
    compared_every = invoke(
        "compare", "COMT_activity", "--status", "any", "--include-unknown", "--format", "json"
    )

    assert counted["total_runs"] == len(loaded)
    assert "unknown" not in counted["runs_by_status"]
    assert (every["total_runs"], every["runs_by_status"]["unknown"]) == (len(loaded) + 1, 1)
    assert None not in [r["gradient_method"] for r in compared]
    # The never-launched run has no gradient method: JSON's spelling of it, not Python's.
    assert every["runs_by_gradient_method"]["null"] == 1
    assert "None" not in every["runs_by_gradient_method"]
    assert "None" not in every["crash_rate_by_gradient_method"]
    assert None in [r["gradient_method"] for r in strict_json(compared_every.output)]


def test_events_lists_the_inbox_newest_first_by_status_and_source(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    inbox.record_delivery("pipeline", "run.started", "k1", b"{}", {}, status="done")
    failed, _ = inbox.record_delivery("s3", "s3.objects", "k2", b"{}", {}, status="failed", last_error="boom")

    everything = invoke("events", "--format", "json")
    only_failed = invoke("events", "--status", "failed")
    bad = invoke("events", "--status", "lost")

    assert [e["kind"] for e in strict_json(everything.output)] == ["s3.objects", "run.started"]
    assert only_failed.exit_code == 0, only_failed.output
    assert re.search(rf"│ {failed} +│ .* │ s3 +│ s3.objects │ failed │ 0 +│ boom +│", only_failed.output)
    assert "run.started" not in only_failed.output
    assert bad.exit_code == 2
    assert "Invalid value for '--status'" in bad.output


# --- export ------------------------------------------------------------------------------------


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page through the runs five at a time, so that the export crosses pages."""
    monkeypatch.setattr(runs, "EXPORT_PAGE", 5)


def expected_row(record: dict[str, Any]) -> dict[str, Any]:
    """A few of the cells an exported run must have, read from the record itself."""
    run = store.get_run(record["run_id"])
    objective = run["objectives"][0]
    return {
        "run_id": record["run_id"],
        "gradient_method": record["config"]["training"]["gradient_method"],
        "config.training.batch_size": record["config"]["training"]["batch_size"],
        "config.model.name": record["config"]["model"]["name"],
        "config.tags": record["config"]["tags"],
        "summary.train/loss": (record["summary"] or {}).get("train/loss"),
        f"objective.{objective['objective_name']}.raw_mean": objective["raw_mean"],
    }


def test_export_csv_streams_every_matching_run_flattened(loaded, small_pages, tmp_path):
    output = tmp_path / "runs.csv"

    result = invoke("export", "--format", "csv", "--output", str(output), "--where", "batch_size>=32")

    expected = [r for r in loaded if r["config"]["training"]["batch_size"] >= 32]
    assert result.exit_code == 0, result.output
    assert result.output == f"exported {len(expected)} run(s) to {output}\n"
    with output.open(newline="", encoding="utf-8") as text:
        rows = {row["run_id"]: row for row in csv.DictReader(text)}
    assert sorted(rows) == ids(expected)
    for record in expected:
        row, want = rows[record["run_id"]], expected_row(record)
        assert row["gradient_method"] == want["gradient_method"]
        assert int(row["config.training.batch_size"]) == want["config.training.batch_size"]
        assert row["config.model.name"] == want["config.model.name"]
        assert json.loads(row["config.tags"]) == want["config.tags"]
        loss = want["summary.train/loss"]
        assert row["summary.train/loss"] == ("" if loss is None else repr(loss))
        objective = next(name for name in want if name.startswith("objective."))
        assert row[objective] == ("" if want[objective] is None else repr(want[objective]))


def test_export_parquet_has_typed_columns_and_every_run(loaded, small_pages, tmp_path):
    output = tmp_path / "runs.parquet"

    result = invoke("export", "--format", "parquet", "--output", str(output))

    assert result.exit_code == 0, result.output
    table = pq.read_table(output)
    assert str(table.schema.field("batch_size").type) == "int64"
    assert str(table.schema.field("summary.train/loss").type) == "double"
    assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    rows = {row["run_id"]: row for row in table.to_pylist()}
    assert sorted(rows) == ids(loaded)
    for record in loaded:
        row, want = rows[record["run_id"]], expected_row(record)
        assert {name: row[name] for name in want if name != "config.tags"} == {
            name: value for name, value in want.items() if name != "config.tags"
        }
        assert json.loads(row["config.tags"]) == want["config.tags"]
        assert row["created_at"] == store.get_run(record["run_id"])["created_at"]



def test_export_parquet_types_columns_of_nothing_but_nulls_from_the_schema(db, tmp_path):
    store.insert_run("bare", config_dict={})
    store.insert_objective("bare", "QED")
    output = tmp_path / "runs.parquet"

    result = invoke("export", "--format", "parquet", "--output", str(output))

    assert result.exit_code == 0, result.output
    schema = pq.read_table(output).schema
    assert str(schema.field("batch_size").type) == "int64"
    assert str(schema.field("learning_rate").type) == "double"
    assert str(schema.field("completed_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("gradient_method").type) == "string"
    assert str(schema.field("objective.QED.raw_mean").type) == "double"

def test_export_jsonl_writes_one_strict_json_run_a_line_to_stdout(loaded, small_pages):
    result = invoke("export", "--format", "jsonl", "--where", "status=crashed")

    crashed = [r for r in loaded if r["state"] == "crashed"]
    assert result.exit_code == 0, result.output
    rows = [strict_json(line) for line in result.output.splitlines()]
    assert sorted(row["run_id"] for row in rows) == ids(crashed)
    assert all(row["error_log_s3_key"].endswith("/error.log") for row in rows)


def test_exporting_nothing_writes_only_the_header(db, tmp_path):
    output = tmp_path / "runs.csv"

    result = invoke("export", "--format", "csv", "--output", str(output))

    assert result.exit_code == 0, result.output
    assert output.read_text().splitlines() == [",".join(store.query.SCALAR_COLUMNS)]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--format", "parquet"], "parquet needs --output FILE"),
        (["--format", "xlsx"], "'xlsx' is not one of 'csv', 'parquet', 'jsonl'"),
        ([], "Missing option '--format'"),
        (["--format", "csv", "--where", "nothing"], "'nothing' is not FIELD OP VALUE"),
    ],
)
def test_bad_export_arguments_exit_2_with_the_reason(db, args, reason):
    result = invoke("export", *args)

    assert result.exit_code == 2
    assert reason in result.output


def test_an_export_that_fails_leaves_no_file(db, tmp_path):
    output = tmp_path / "runs.csv"

    result = invoke("export", "--format", "csv", "--output", str(output), "--where", "colour=red")

    assert result.exit_code == 1
    assert result.output == "Error: unknown field 'colour': use a column (" + result.output.split("(", 1)[1]
    assert not Path(output).exists()


def test_warnings_show_on_the_event_and_on_the_run(client, worker, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    body = (
        b'{"type": "run.launched", "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": "big-seed",'
        b' "config": {"training": {"seed": 12345678901234567890}}}}'
    )
    event_id = post_pipeline(client, body).json["event_id"]
    worker.run_once()

    events = invoke("events")
    events_json = strict_json(invoke("events", "--format", "json").output)
    shown = invoke("run", "big-seed")
    as_json = strict_json(invoke("run", "big-seed", "--format", "json").output)

    warning = "12345678901234567890 is out of range for a 64-bit integer; left empty, the value is kept in config_json"
    assert events.exit_code == 0, events.output
    assert re.search(rf"│ {event_id} +│ .* │ done +│ 1 +│ +│ run big-seed: seed: {re.escape(warning)} │", events.output)
    assert events_json[0]["warnings"] == [f"run big-seed: seed: {warning}"]
    assert shown.exit_code == 0, shown.output
    assert re.search(r"warnings\s+┏━+┳━+┓\s+┃ field ┃ warning +┃", shown.output)
    assert f"│ seed  │ {warning} │" in shown.output
    assert as_json["seed"] is None
    assert as_json["warnings"] == {"seed": warning}
    assert as_json["config_json"] == {"training": {"seed": 12345678901234567890}}


# --- --filter ----------------------------------------------------------------------------------


def test_runs_filter_takes_the_filter_language(loaded):
    result = invoke(
        "runs",
        "--filter",
        "(config.training.batch_size >= 128 OR gradient_method in ('mgda', 'pcgrad')) "
        "and not summary.train/loss > 1 and status = 'finished'",
        "--limit",
        "1000",
        "--format",
        "json",
    )

    def matches(record: dict[str, Any]) -> bool:
        training, summary = record["config"]["training"], record["summary"] or {}
        loss = summary.get("train/loss")
        return (
            (training["batch_size"] >= 128 or training["gradient_method"] in ("mgda", "pcgrad"))
            and loss is not None
            and not math.isnan(loss)
            and loss <= 1
            and record["state"] == "finished"
        )

    expected = [r for r in loaded if matches(r)]
    assert result.exit_code == 0, result.output
    assert expected
    assert sorted(run["run_id"] for run in strict_json(result.output)) == ids(expected)


def test_runs_filter_and_where_combine(loaded):
    result = invoke("runs", "--filter", "batch_size >= 64", "--where", "status=crashed", "--format", "json")

    expected = [r for r in loaded if r["config"]["training"]["batch_size"] >= 64 and r["state"] == "crashed"]
    assert result.exit_code == 0, result.output
    assert sorted(run["run_id"] for run in strict_json(result.output)) == ids(expected)


def test_runs_filter_combines_with_objectives(loaded):
    result = invoke("runs", "--objective", "QED>0", "--filter", "batch_size < 64", "--format", "json")

    expected = store.query_runs_by_objectives({"QED": {"gt": 0}}, where="batch_size < 64")
    assert result.exit_code == 0, result.output
    assert expected
    assert all(run["batch_size"] < 64 for run in expected)
    assert [run["run_id"] for run in strict_json(result.output)] == [run["run_id"] for run in expected]


@pytest.mark.parametrize(
    ("command", "text", "message"),
    [
        ("runs", "batchsize = 64", "Error: unknown field 'batchsize' at 1:1; did you mean 'batch_size'?\n"),
        (
            "runs",
            "status = 'completed'\nand summary.loss <",
            "Error: expected a value (a number, a 'string', true or false), found end of filter at 2:19\n",
        ),
        ("export", "batch_size = 'big'", "Error: batch_size compares with numbers, not 'big' at 1:14\n"),
        (
            "stats",
            "objective.QED.mean > 1",
            "Error: unknown objective statistic 'mean' at 1:1; did you mean 'raw_mean'?\n",
        ),
    ],
)
def test_a_bad_filter_exits_1_with_one_line_naming_where_and_why(db, command, text, message):
    args = [command, "--filter", text] + (["--format", "jsonl"] if command == "export" else [])

    result = invoke(*args)

    assert result.exit_code == 1
    assert result.output == message


def test_compare_filter_limits_the_runs_compared(loaded):
    result = invoke("compare", "COMT_activity", "--filter", "batch_size >= 64", "--format", "json")
    nothing = invoke("compare", "COMT_activity", "--filter", "batch_size > 100000")

    assert result.exit_code == 0, result.output
    expected = store.compare_gradient_methods("COMT_activity", where="batch_size >= 64")
    assert strict_json(result.output) == json.loads(json.dumps(expected))
    assert sum(row["num_runs"] for row in expected) < sum(
        row["num_runs"] for row in store.compare_gradient_methods("COMT_activity")
    )
    assert nothing.exit_code == 1
    assert nothing.output == (
        "Error: no completed run matching the filter has a raw_mean for objective COMT_activity\n"
    )


def test_stats_filter_counts_the_matching_runs_with_crash_rates_by_method(loaded):
    method = loaded[0]["config"]["training"]["gradient_method"]
    table = invoke("stats", "--filter", f"gradient_method = '{method}'")
    as_json = invoke("stats", "--filter", f"gradient_method = '{method}'", "--format", "json")

    mine = [r for r in loaded if r["config"]["training"]["gradient_method"] == method]
    crashed = sum(r["state"] == "crashed" for r in mine)
    assert as_json.exit_code == 0, as_json.output
    numbers = strict_json(as_json.output)
    assert numbers["total_runs"] == len(mine)
    assert numbers["crash_rate_by_gradient_method"] == {method: crashed / len(mine)}
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if f"│ {method} " in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [method, str(len(mine)), f"{crashed / len(mine):.1%}"]


def test_export_filter_exports_only_the_matching_runs(loaded, small_pages):
    result = invoke("export", "--format", "jsonl", "--filter", "status = 'crashed' or batch_size = 16")

    expected = [r for r in loaded if r["state"] == "crashed" or r["config"]["training"]["batch_size"] == 16]
    assert result.exit_code == 0, result.output
    assert sorted(strict_json(line)["run_id"] for line in result.output.splitlines()) == ids(expected)


def test_where_with_an_integer_past_a_columns_range_is_one_line_naming_the_range(db):
    result = invoke("runs", "--where", "batch_size>9223372036854775808")

    assert result.exit_code == 1
    assert result.output == (
        "Error: 9223372036854775808 is out of the range of batch_size (-2147483648 to 2147483647)\n"
    )


def test_where_on_a_json_path_compares_integers_past_64_bits_as_numbers(loaded):
    huge = invoke("runs", "--where", "config.training.batch_size>9223372036854775808", "--format", "json")
    small = invoke("runs", "--where", "config.training.batch_size<9223372036854775808", "--format", "json")

    assert huge.exit_code == 0, huge.output
    assert strict_json(huge.output) == []
    assert small.exit_code == 0, small.output
    assert len(strict_json(small.output)) == min(len(loaded), 100)
