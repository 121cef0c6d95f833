"""What every subcommand shares: settings, the store, and errors as one line and exit 1.

Imported by every command, and by `training-db --help`: what only some commands need (pydantic,
rich, the store's SQLAlchemy) is imported where it is used, so that no command waits for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

import store
from ingest import settings as configuration

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from ingest.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def load_settings(database_url: str | None = None, create: bool = False) -> Settings:
    """Read the settings from the environment and point the store at the database.

    Unless ``create``, a missing SQLite file is an error: opening it would create an empty one.
    """
    from pydantic import ValidationError

    try:
        settings = (
            configuration.Settings()
            if database_url is None
            else configuration.Settings(database_url=database_url)
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise click.ClickException(f"bad configuration: {problems}") from None
    open_database(settings.database_url, create)
    return settings


def open_database(database_url: str | None = None, create: bool = False) -> str:
    """Point the store at the database (default: the settings' DATABASE_URL) and return its URL.

    For commands that need no other setting. Unless ``create``, a missing SQLite file is an
    error: opening it would create an empty one.
    """
    url = configuration.database_url() if database_url is None else database_url
    path = store.sqlite_file(url)
    if not create and path is not None and not path.exists():
        raise click.ClickException(
            f"no database at {path}: set DATABASE_URL to yours (sqlite:////absolute/path.db or "
            "postgresql://USER@HOST/DATABASE), or run `training-db migrate` to create one there"
        )
    try:
        stale_after = configuration.stale_after_seconds()
    except ValueError as error:
        raise click.ClickException(f"bad configuration: {error}") from None
    store.configure(url)
    store.configure_stale_after(stale_after)
    return url


def explain(error: Exception) -> str:
    """Return the one line that tells a user what went wrong and what to do about it."""
    if store.schema_missing(error):
        return (
            f"database {_database()} has no training-db tables: run `training-db migrate` "
            "(or set DATABASE_URL to the database you meant)"
        )
    if isinstance(error, store.DatabaseUnavailable):
        return f"database {_database()} is unreachable: {error} (is it running, and is DATABASE_URL right?)"
    if isinstance(error, ValueError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"unexpected {type(error).__name__}: {first_line} (run again with --debug for the traceback)"


def _database() -> str:
    return store.database_location(str(store.get_engine().url.render_as_string(hide_password=False)))


def user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Report any failure as one line and exit status 1; with --debug, show its traceback instead."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            context = click.get_current_context(silent=True)
            if context is not None and context.find_root().params.get("debug"):
                raise
            raise click.ClickException(explain(error)) from None

    return wrapper


def progress_bar(*columns: ProgressColumn) -> Progress:
    """Return a progress display on stderr, shown only when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while a progress bar counts them."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn

    with progress_bar(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
