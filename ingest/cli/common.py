"""What every subcommand shares: settings, the store, and errors as one line and exit 1."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn

import store
from ingest.settings import Settings
from store.database import DatabaseUnavailable, location, schema_missing, sqlite_file

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def load_settings(database_url: str | None = None, create: bool = False) -> Settings:
    """Read the settings from the environment and point the store at the database.

    Unless ``create``, a missing SQLite file is an error: opening it would create an empty one.
    """
    try:
        settings = Settings() if database_url is None else Settings(database_url=database_url)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise click.ClickException(f"bad configuration: {problems}") from None
    path = sqlite_file(settings.database_url)
    if not create and path is not None and not path.exists():
        raise click.ClickException(
            f"no database at {path}: set DATABASE_URL to yours (sqlite:////absolute/path.db or "
            "postgresql://USER@HOST/DATABASE), or run `training-db migrate` to create one there"
        )
    store.configure(settings.database_url)
    store.configure_stale_after(settings.stale_after_seconds)
    return settings


def explain(error: Exception) -> str:
    """Return the one line that tells a user what went wrong and what to do about it."""
    if schema_missing(error):
        return (
            f"database {_database()} has no training-db tables: run `training-db migrate` "
            "(or set DATABASE_URL to the database you meant)"
        )
    if isinstance(error, DatabaseUnavailable):
        return f"database {_database()} is unreachable: {error} (is it running, and is DATABASE_URL right?)"
    if isinstance(error, ValueError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"unexpected {type(error).__name__}: {first_line} (run again with --debug for the traceback)"


def _database() -> str:
    return location(str(store.get_engine().url.render_as_string(hide_password=False)))


def user_errors(function: F) -> F:
    """Report any failure as one line and exit status 1; with --debug, show its traceback instead."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            context = click.get_current_context(silent=True)
            if context is not None and context.find_root().params.get("debug"):
                raise
            raise click.ClickException(explain(error)) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(*columns: ProgressColumn) -> Progress:
    """Return a progress display on stderr, shown only when stderr is a terminal."""
    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while a progress bar counts them."""
    with progress_bar(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
