"""Copy a whole database: the planned move from the SQLite file to PostgreSQL."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn

from ingest.cli.common import load_settings, progress_bar
from store import CopyFailed, DatabaseUnavailable, copy_database


def _location(url: str) -> str:
    return url.split("@")[-1]


@click.command()
@click.option("--to", "target_url", required=True, metavar="URL", help="The database to copy into.")
@click.option(
    "--from", "source_url", metavar="URL", help="The database to copy from (default: $DATABASE_URL)."
)
@click.option(
    "--replace", is_flag=True, help="Delete the target's rows first instead of refusing a non-empty target."
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Rows per insert."
)
def copy(target_url: str, source_url: str | None, replace: bool, batch_size: int) -> None:
    """Copy a whole database into another: SQLite into PostgreSQL, say.

    Usage: `copy --to postgresql://user@host/db`. The target is migrated to the newest schema and
    filled in one transaction; the row counts are compared before it commits, so a failed copy
    leaves the target as it was. Stop the service writing to the source first, or its newest rows
    may be left behind.
    """
    source_url = source_url or load_settings().database_url
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn())
    with progress_bar(*columns) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        try:
            counts = copy_database(source_url, target_url, replace, batch_size, advance)
        except CopyFailed as error:
            raise click.ClickException(str(error)) from None
        except DatabaseUnavailable as error:
            # Either database may be the one that is down: the driver's message names its host.
            raise click.ClickException(
                f"cannot copy {_location(source_url)} -> {_location(target_url)}: {error}"
            ) from None
    for table, count in counts.items():
        click.echo(f"{table:<16} {count:>9} rows")
    click.echo(f"copied {_location(source_url)} -> {_location(target_url)}; row counts verified")
