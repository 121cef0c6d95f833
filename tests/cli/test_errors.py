"""Every mistake a user can make on the command line is answered in one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import make_url

from ingest.cli import main
from store import migrate
from tests.faults.services import free_port, private_postgres

BIN = Path(sys.executable).parent
READ_COMMANDS = [
    ["runs"],
    ["run", "r1"],
    ["stats"],
    ["compare", "loss"],
    ["events"],
    ["export", "--format", "csv"],
    ["replay", "inbox"],
    ["inbox", "stats"],
    ["info"],
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result, exit_code: int = 1) -> str:
    """Assert that ``result`` failed with one line on stderr and no traceback; return that line."""
    assert result.exit_code == exit_code, result.output
    # An exception click did not turn into a message would have been a traceback.
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in an empty folder with DATABASE_URL unset: the default database is not there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_postgresql_database_never_migrated_says_to_migrate(
    command: list[str], unmigrated_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", unmigrated_postgres)
    result = invoke(*command)
    if command == ["info"]:
        assert result.exit_code == 0
        assert "schema:   empty" in result.stdout and "run `training-db migrate`" in result.stdout
        return
    line = one_line_error(result)
    assert "has no training-db tables: run `training-db migrate`" in line


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_an_sqlite_file_without_tables_says_to_migrate(command: list[str], in_empty_folder: Path) -> None:
    (in_empty_folder / "training_runs.db").touch()
    result = invoke(*command)
    if command == ["info"]:
        assert result.exit_code == 0 and "schema:   empty" in result.stdout
        return
    line = one_line_error(result)
    assert f"database {in_empty_folder / 'training_runs.db'} has no training-db tables" in line
    assert "run `training-db migrate`" in line


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_read_command_never_creates_the_database_file(command: list[str], in_empty_folder: Path) -> None:
    line = one_line_error(invoke(*command))
    assert f"no database at {in_empty_folder / 'training_runs.db'}" in line
    assert "DATABASE_URL" in line
    assert list(in_empty_folder.iterdir()) == []


def test_migrate_creates_the_default_database_and_info_describes_it(in_empty_folder: Path) -> None:
    migrated = invoke("migrate")
    assert migrated.exit_code == 0, migrated.output
    assert "INFO" not in migrated.output
    shown = invoke("info")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"database: {in_empty_folder / 'training_runs.db'}"
    assert lines[2:] == ["runs:     0", "inbox:    0 event(s)"]
    assert "behind" not in lines[1]


def test_info_hides_the_password(unmigrated_postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_password = make_url(unmigrated_postgres).set(password="hunter2")
    monkeypatch.setenv("DATABASE_URL", with_password.render_as_string(hide_password=False))
    result = invoke("info")
    assert "hunter2" not in result.output
    assert "***" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("training-db, version ")


@pytest.mark.parametrize("command", [["migrate"], ["runs"]], ids=" ".join)
def test_an_unreachable_postgresql_is_one_line(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    line = one_line_error(invoke(*command))
    assert "is unreachable" in line and "Connection refused" in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "database URL 'not a url' is not a URL"),
        ("mysql://user@db.example/runs", "mysql is not supported"),
    ],
)
def test_a_database_url_that_cannot_work_names_the_supported_schemes(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    for command in (["runs"], ["migrate"]):
        line = one_line_error(invoke(*command))
        assert problem in line
        assert "sqlite:///PATH or postgresql://USER@HOST/DATABASE" in line


@pytest.mark.parametrize("value", ["abc", "0"])
@pytest.mark.parametrize("command", [["runs"], ["worker"]], ids=" ".join)
def test_a_stale_after_that_cannot_work_is_one_line(
    command: list[str], value: str, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STALE_AFTER_SECONDS", value)
    line = one_line_error(invoke(*command))
    assert line.startswith("Error: bad configuration: STALE_AFTER_SECONDS")


@pytest.mark.parametrize("output_format", ["csv", "parquet", "jsonl"])
def test_export_into_a_missing_folder_names_the_file_asked_for(output_format: str, db: str) -> None:
    line = one_line_error(
        invoke("export", "--format", output_format, "--output", f"/nonexistent/dir/x.{output_format}")
    )
    assert line == f"Error: cannot write /nonexistent/dir/x.{output_format}: No such file or directory"


def test_send_data_from_a_missing_file_is_one_line() -> None:
    line = one_line_error(invoke("send", "run.started", "--run-id", "r1", "--data", "@/nonexistent.json"))
    assert line == "Error: cannot read --data file /nonexistent.json: No such file or directory"


def test_the_real_command_prints_no_traceback_and_debug_shows_it(unmigrated_postgres: str) -> None:
    env = {**os.environ, "DATABASE_URL": unmigrated_postgres}
    plain = subprocess.run([BIN / "training-db", "runs"], env=env, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = subprocess.run(
        [BIN / "training-db", "--debug", "runs"], env=env, capture_output=True, text=True, timeout=60
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "training_runs" in debug.stderr


def test_the_worker_waits_out_an_unreachable_database(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen([BIN / "training-db", "worker"], env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while "database_unavailable" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Three retries (after 1, 2 and 4 s) fit in this wait: each is silent.
        time.sleep(8)
        assert worker.poll() is None, log.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert len([line for line in lines if "database_unavailable" in line]) == 1, lines
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_a_worker_started_during_an_outage_starts_once_the_database_is_back(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with private_postgres() as cluster:
        cluster.stop()
        with (
            log.open("w") as output,
            subprocess.Popen(
                [BIN / "training-db", "worker"],
                env={**os.environ, "DATABASE_URL": cluster.url},
                stdout=output,
                stderr=output,
            ) as worker,
        ):
            try:
                wait_for_line(log, "worker.database_unavailable")
                cluster.start()
                wait_for_line(log, "worker.started")
                assert worker.poll() is None, log.read_text()
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    text = log.read_text()
    assert text.count("worker.database_unavailable") == 1
    assert text.index("worker.database_available") < text.index("worker.started")
    assert "alembic" not in text
    assert "Traceback" not in text


def wait_for_line(log: Path, marker: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker in log.read_text(), log.read_text()


def test_migrate_is_quiet_unless_verbose(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/runs.db"}
    quiet = subprocess.run(
        [BIN / "training-db", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    (tmp_path / "runs.db").unlink()
    verbose = subprocess.run(
        [BIN / "training-db", "-v", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )

    assert quiet.returncode == 0 and verbose.returncode == 0
    assert quiet.stderr == ""
    assert quiet.stdout == f"database {tmp_path}/runs.db: schema empty -> {migrate.head_revision()}\n"
    assert "INFO alembic.runtime.migration Running upgrade" in verbose.stderr


def test_copy_into_an_unreachable_database_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/runs.db")
    assert invoke("migrate").exit_code == 0
    port = free_port()

    line = one_line_error(invoke("copy", "--to", f"postgresql://postgres@127.0.0.1:{port}/x"))

    assert line.startswith(f"Error: cannot copy sqlite:///{tmp_path}/runs.db -> 127.0.0.1:{port}/x: ")
    assert "Connection refused" in line
