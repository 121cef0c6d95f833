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
from store.database import DatabaseUnavailable

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def load_settings(database_url: str | None = None) -> Settings:
    """Read the settings from the environment and point the store at the database."""
    try:
        settings = Settings() if database_url is None else Settings(database_url=database_url)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise click.ClickException(f"bad configuration: {problems}") from None
    store.configure(settings.database_url)
    return settings


def user_errors(function: F) -> F:
    """Report bad input and an unreachable database as one line and exit status 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, DatabaseUnavailable) as error:
            raise click.ClickException(str(error)) from None

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
