"""The `training-db` command."""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

import click

from ingest.cli.common import user_errors

# Each command, where it is defined, and its help's first sentence. A command's module is
# imported only when the command runs (click's LazyGroup pattern): importing them all took
# longer than most commands' work. `training-db --help` lists the commands from this table
# instead of importing them; a test checks the sentences against the commands' own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("ingest.cli.runs:compare", "Compare gradient methods on one objective, best first."),
    "consume-sqs": (
        "ingest.cli.replay:consume_sqs",
        "Pull S3 notifications from an SQS queue into the inbox.",
    ),
    "copy": ("ingest.cli.copy:copy", "Copy a whole database into another: SQLite into PostgreSQL, say."),
    "diversity": (
        "ingest.cli.scaffolds:diversity",
        "Compare groups of runs on how many distinct scaffolds they found.",
    ),
    "events": ("ingest.cli.runs:events", "List the newest inbox events and what became of them."),
    "export": ("ingest.cli.runs:export", "Export every matching run, flattened, for pandas and friends."),
    "inbox": (
        "ingest.cli.inbox:inbox_group",
        "The inbox: every delivery, what became of it, and its archive (INBOX_ARCHIVE).",
    ),
    "info": (
        "ingest.cli.info:info",
        "Show the database in use (password hidden), its schema revision, and its runs and inbox events.",
    ),
    "migrate": (
        "ingest.cli.service:migrate",
        "Create or upgrade the database schema to the newest migration.",
    ),
    "replay": (
        "ingest.cli.replay:replay",
        "Replay stored or captured events; running one twice changes nothing.",
    ),
    "run": (
        "ingest.cli.runs:run",
        "Show one run: fields, objectives, crash report, config, summary; or follow it live (--watch).",
    ),
    "runs": (
        "ingest.cli.runs:runs",
        "List the runs that match every filter, newest first (best first with --objective).",
    ),
    "scaffolds": (
        "ingest.cli.scaffolds:scaffolds",
        "Show the Bemis-Murcko scaffolds of a run's molecules, or across runs.",
    ),
    "send": (
        "ingest.cli.service:send",
        "Sign and send one pipeline event, e.g. `send run.finished --run-id R --data @summary.json`.",
    ),
    "serve": (
        "ingest.cli.service:serve",
        "Serve the webhook endpoints with gunicorn (the Procfile's web process).",
    ),
    "stats": ("ingest.cli.runs:stats", "Count runs by status and gradient method; show the crash rates."),
    "worker": (
        "ingest.cli.service:worker",
        "Process inbox events: run handlers, retry failures, sync W&B projects.",
    ),
}


class TrainingDb(click.Group):
    """The command group: commands load on first use; whatever one raises reaches the user as one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        # Shortened as click shortens a loaded command's help.
        rows = [
            (name, click.Command(name, help=text).get_short_help_str(limit))
            for name, (_, text) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
