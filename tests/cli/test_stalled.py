"""Stalled runs in `training-db runs` and `training-db run`: marked, filtered, and a setting."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

import store
from ingest.cli import main
from tests.stalled import backdate_runs


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def runs(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running run quiet for an hour, a busy one, and a finished one quiet for as long."""
    monkeypatch.setenv("COLUMNS", "200")
    for run_id, status in (("quiet-run", "running"), ("busy-run", "running"), ("done-run", "completed")):
        store.insert_run(run_id)
        store.update_run_status(run_id, status)
    backdate_runs(["quiet-run", "done-run"], 3600)


def table_rows(output: str) -> dict[str, str]:
    """Each row of a table by its first cell."""
    cells = [line.replace("│", " ").split() for line in output.splitlines()]
    return {words[0]: " ".join(words) for words in cells if words and words[0].endswith("-run")}


def test_the_runs_table_marks_a_stalled_run(runs: None) -> None:
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert "running (stalled)" in rows["quiet-run"]
    assert "stalled" not in rows["busy-run"] and "stalled" not in rows["done-run"]


def test_the_filter_and_the_columns_take_stalled(runs: None) -> None:
    found = json.loads(invoke("runs", "--filter", "stalled = true", "--format", "json").output)
    assert [run["run_id"] for run in found] == ["quiet-run"]
    shown = json.loads(invoke("runs", "--columns", "run_id,stalled", "--format", "json").output)
    assert {run["run_id"]: run["stalled"] for run in shown} == {
        "quiet-run": True,
        "busy-run": False,
        "done-run": False,
    }


def test_a_bad_stalled_filter_is_one_line_and_exit_1(runs: None) -> None:
    result = invoke("runs", "--filter", "stalled > 1")
    assert result.exit_code == 1
    assert result.output == "Error: stalled compares with true or false, not 1 at 1:11\n"


def test_the_run_view_says_whether_it_is_stalled(runs: None) -> None:
    assert json.loads(invoke("run", "quiet-run", "--format", "json").output)["stalled"] is True
    assert json.loads(invoke("run", "busy-run", "--format", "json").output)["stalled"] is False
    rows = [line.replace("│", " ").split() for line in invoke("run", "quiet-run").output.splitlines()]
    assert ["stalled", "True"] in rows


def test_stale_after_seconds_comes_from_the_environment(runs: None) -> None:
    result = invoke(
        "runs", "--filter", "stalled = true", "--format", "json", env={"STALE_AFTER_SECONDS": "7200"}
    )
    assert json.loads(result.output) == []
    store.configure_stale_after(900)
