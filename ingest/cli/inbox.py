"""The inbox itself: what it holds, and archiving its old processed deliveries."""

from __future__ import annotations

from datetime import timedelta

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Column, Table

import store
from ingest.archive import BATCH_SIZE, Archiver
from ingest.cli.common import load_settings


@click.group("inbox")
def inbox_group() -> None:
    """The inbox: every delivery, what became of it, and its archive (INBOX_ARCHIVE)."""


@inbox_group.command()
def stats() -> None:
    """Count deliveries by status and source, the oldest of each status, and what is due for archiving."""
    settings = load_settings()
    numbers = store.inbox_statistics(store.utcnow() - timedelta(days=settings.inbox_retention_days))
    console = Console()
    total = sum(numbers.by_status.values())
    size = f", {numbers.total_bytes:,} bytes (table, indexes and TOAST)" if numbers.total_bytes else ""
    console.print(f"inbox: {'1 delivery' if total == 1 else f'{total:,} deliveries'}{size}")
    table = Table("status", Column("deliveries", justify="right"), "oldest received (UTC)")
    for status in store.INBOX_STATUSES:
        if status in numbers.by_status:
            oldest = numbers.oldest[status]
            table.add_row(status, f"{numbers.by_status[status]:,}", f"{oldest:%Y-%m-%d %H:%M:%S}")
    console.print(table)
    sources = Table("source", Column("deliveries", justify="right"))
    for source, count in sorted(numbers.by_source.items()):
        sources.add_row(source, f"{count:,}")
    console.print(sources)
    click.echo(
        f"archivable: {numbers.archivable:,} done or ignored deliveries received before "
        f"{numbers.archivable_before:%Y-%m-%d %H:%M:%S} UTC (INBOX_RETENTION_DAYS {settings.inbox_retention_days:g})"
    )
    if settings.inbox_archive:
        click.echo(f"archive: {settings.inbox_archive}")
    else:
        click.echo("archive: INBOX_ARCHIVE is unset, so nothing is archived or deleted")


@inbox_group.command()
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Archive deliveries received more than DAYS ago (default: $INBOX_RETENTION_DAYS).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=BATCH_SIZE,
    show_default=True,
    help="Deliveries per file, and per transaction.",
)
def archive(older_than: float | None, batch_size: int) -> None:
    """Archive done and ignored deliveries older than the retention to INBOX_ARCHIVE, then delete them.

    What the worker does in the background, all at once. Each batch is one gzip-compressed JSON
    lines file, deleted from the inbox only once the file is written; failed, dead and invalid
    deliveries stay.
    """
    settings = load_settings()
    if not settings.inbox_archive:
        raise click.ClickException("INBOX_ARCHIVE is unset: set it to a folder or s3://bucket/prefix")
    days = settings.inbox_retention_days if older_than is None else older_than
    # Waits for a worker's batch rather than give up: the worker's next turn finds less to do.
    archiver = Archiver(settings.inbox_archive, batch_size, wait=True)
    try:
        archived = archiver.archive(store.utcnow() - timedelta(days=days))
    except (OSError, BotoCoreError, ClientError) as error:
        raise click.ClickException(f"archive {archiver.target.location}: {error}") from None
    click.echo(f"{archived.summary(archiver.target.location)} (received more than {days:g} day(s) ago)")
