"""Which database the command uses, its schema revision, and what it holds."""

from __future__ import annotations

import click

import store
from ingest.cli.common import load_settings
from store import database_location


@click.command()
def info() -> None:
    """Show the database in use (password hidden), its schema revision, and its runs and inbox events."""
    settings = load_settings()
    click.echo(f"database: {database_location(settings.database_url)}")
    current = store.current_revision()
    head = store.head_revision()
    if current is None:
        click.echo(f"schema:   empty (newest {head}): run `training-db migrate`")
        return
    behind = "" if current == head else f", behind the newest {head}: run `training-db migrate`"
    click.echo(f"schema:   {current}{behind}")
    if current != head:
        return
    click.echo(f"runs:     {store.get_stats(include_unknown=True)['total_runs']:,}")
    by_status: dict[str, int] = {}
    for (_, status), count in store.inbox_counts().items():
        by_status[status] = by_status.get(status, 0) + count
    shown = ", ".join(
        f"{status} {by_status[status]:,}" for status in store.INBOX_STATUSES if status in by_status
    )
    click.echo(f"inbox:    {sum(by_status.values()):,} event(s){': ' + shown if shown else ''}")
