"""All configuration, read from the environment in one place.

``Settings`` holds all of it. A command that needs only the database (the CLI's read commands)
asks for ``database_url()`` and ``stale_after_seconds()`` instead: the same values, without
loading pydantic, whose import alone took longer than such a command's whole run
(bench/startup.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.settings_model import Settings

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_STALE_AFTER_SECONDS", "Settings", "database_url", "stale_after_seconds"]

DEFAULT_DATABASE_URL = "sqlite:///training_runs.db"
DEFAULT_STALE_AFTER_SECONDS = 900.0


def _variable(wanted: str, environ: Mapping[str, str] | None) -> str | None:
    environ = os.environ if environ is None else environ
    if wanted in environ:
        return environ[wanted]
    # pydantic-settings matches variable names without regard to case.
    for name, value in environ.items():
        if name.upper() == wanted:
            return value
    return None


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the database URL as ``Settings().database_url`` reads it from the environment."""
    value = _variable("DATABASE_URL", environ)
    return DEFAULT_DATABASE_URL if value is None else value


def stale_after_seconds(environ: Mapping[str, str] | None = None) -> float:
    """Return ``Settings().stale_after_seconds`` as read from the environment; ValueError when invalid."""
    value = _variable("STALE_AFTER_SECONDS", environ)
    if value is None:
        return DEFAULT_STALE_AFTER_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"STALE_AFTER_SECONDS: {value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"STALE_AFTER_SECONDS: must be greater than 0, not {value!r}")
    return seconds


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from ingest.settings_model import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
