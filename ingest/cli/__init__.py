"""The `training-db` command."""

from __future__ import annotations

import logging

import click

from ingest.cli import copy, inbox, replay, runs, scaffolds, service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """training-db: every ML training run in one database.

    The database is DATABASE_URL (default: the SQLite file ./training_runs.db).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


for command in [
    *service.COMMANDS,
    *replay.COMMANDS,
    *runs.COMMANDS,
    *scaffolds.COMMANDS,
    *copy.COMMANDS,
    *inbox.COMMANDS,
]:
    main.add_command(command)
