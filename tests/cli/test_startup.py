"""Each command imports only what it uses: `--help` and a read command start without the heavy libraries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import store
from ingest.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
# What the web app, the replays and the exports need, and no read command does.
HEAVY = {
    "flask",
    "werkzeug",
    "pydantic",
    "pydantic_settings",
    "boto3",
    "botocore",
    "rdkit",
    "pyarrow",
    "alembic",
}


# Runs the CLI as its console script does, then lists sys.modules: -X importtime misses the
# modules imported by importlib.import_module (store's lazy exports).
RUN_AND_LIST_MODULES = """
import sys
from ingest.cli import main
try:
    main(prog_name="training-db")
finally:
    print("\\n".join(sys.modules), file=sys.stderr)
"""


def imported_modules(*args: str, database_url: str | None = None) -> set[str]:
    """Run `training-db ARGS` in a fresh interpreter; return every module it imported."""
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    finished = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return set(finished.stderr.splitlines())


def imported_by(*args: str, database_url: str | None = None) -> set[str]:
    """Run `training-db ARGS` in a fresh interpreter; return the top-level packages it imported."""
    return {name.split(".")[0] for name in imported_modules(*args, database_url=database_url)}


def test_help_imports_no_command_and_neither_the_store_nor_any_heavy_library() -> None:
    imported = imported_by("--help")
    assert imported & (HEAVY | {"sqlalchemy", "rich", "psycopg"}) == set()


def test_runs_imports_none_of_the_heavy_libraries(database_url: str) -> None:
    imported = imported_by("runs", "--limit", "1", database_url=database_url)
    assert "sqlalchemy" in imported
    assert imported & HEAVY == set()


@pytest.mark.parametrize(
    "command",
    [("runs", "--limit", "1"), ("run", "run-1"), ("stats",), ("events", "--limit", "1")],
    ids=" ".join,
)
def test_a_read_command_on_sqlite_loads_neither_the_orm_nor_the_postgresql_dialect(
    command: tuple[str, ...], tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "training_runs.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    store.configure(url).dispose()
    store.load_runs([{"run_id": "run-1", "state": "finished", "config": {"gradient_method": "mgda"}}])
    imported = imported_modules(*command, database_url=url)
    assert {"store.query", "store.inbox"} & imported
    assert {"sqlalchemy.orm", "sqlalchemy.dialects.postgresql"} & imported == set()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_each_command_with_the_first_sentence_of_its_own_help(name: str) -> None:
    with click.Context(main) as context:
        command = main.get_command(context, name)
    assert command is not None
    assert (command.help or "").split("\n\n")[0].split() == COMMANDS[name][1].split()
