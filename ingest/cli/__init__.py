"""The `training-db` command."""

from __future__ import annotations

import logging
from typing import Any

import click

from ingest.cli import copy, inbox, info, replay, runs, scaffolds, service
from ingest.cli.common import user_errors


class TrainingDb(click.Group):
    """The command group: whatever a subcommand raises reaches the user as one line (user_errors)."""

    @user_errors
    def invoke(self, ctx: click.Context) -> Any:
        return super().invoke(ctx)


@click.group(cls=TrainingDb, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log debug details, and the migrations' progress.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of its one-line summary.")
@click.version_option(package_name="training-db", prog_name="training-db")
def main(verbose: bool, debug: bool) -> None:
    """training-db: every ML training run in one database.

    The database is DATABASE_URL (default: the SQLite file training_runs.db in the current folder).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not verbose:
        # Alembic announces every migration it runs and its context at INFO: noise for migrate,
        # copy and the worker's start.
        logging.getLogger("alembic").setLevel(logging.WARNING)


for command in [
    *service.COMMANDS,
    *replay.COMMANDS,
    *runs.COMMANDS,
    *scaffolds.COMMANDS,
    *copy.COMMANDS,
    *inbox.COMMANDS,
    *info.COMMANDS,
]:
    main.add_command(command)
