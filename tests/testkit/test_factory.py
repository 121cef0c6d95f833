"""The benchmarks' runs files: read as JSONL records, or refused naming the line."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from testkit.factory import read_runs_file, runs_file


def test_a_runs_file_yields_its_records_skipping_blank_lines_and_taking_nan(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text('{"run_id": "a", "summary": {"loss": NaN}}\n\n{"run_id": "b"}\n', encoding="utf-8")

    records = list(read_runs_file(path))

    assert [record["run_id"] for record in records] == ["a", "b"]
    assert math.isnan(records[0]["summary"]["loss"])


@pytest.mark.parametrize(
    ("line", "problem"),
    [("not json", "line 2: not JSON"), ("[1, 2]", "line 2: not a JSON object")],
)
def test_a_line_that_is_no_record_is_refused_naming_it(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text('{"run_id": "a"}\n' + line + "\n", encoding="utf-8")

    with pytest.raises(ValueError, match=problem):
        list(read_runs_file(path))


def test_a_runs_file_argument_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="no such file"):
        runs_file(str(tmp_path / "missing.jsonl"))
    with pytest.raises(argparse.ArgumentTypeError, match="no such file"):
        runs_file(str(tmp_path))
