"""Each command imports only what it uses: `--help` and a read command start without the heavy libraries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

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


def imported_by(*args: str, database_url: str | None = None) -> set[str]:
    """Run `training-db ARGS` in a fresh interpreter; return the top-level packages it imported."""
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ingest.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", finished.stderr, re.MULTILINE)
    return {name.split(".")[0] for name in names}


def test_help_imports_no_command_and_neither_the_store_nor_any_heavy_library() -> None:
    imported = imported_by("--help")
    assert imported & (HEAVY | {"sqlalchemy", "rich", "psycopg"}) == set()


def test_runs_imports_none_of_the_heavy_libraries(database_url: str) -> None:
    imported = imported_by("runs", "--limit", "1", database_url=database_url)
    assert "sqlalchemy" in imported
    assert imported & HEAVY == set()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_each_command_with_the_first_sentence_of_its_own_help(name: str) -> None:
    with click.Context(main) as context:
        command = main.get_command(context, name)
    assert command is not None
    assert (command.help or "").split("\n\n")[0].split() == COMMANDS[name][1].split()
