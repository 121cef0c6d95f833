"""All configuration, read from the environment in one place.

``Settings`` holds all of it. A command that needs only the database (the CLI's read commands)
asks for ``database_url()`` instead: the same value, without loading pydantic, whose import
alone took longer than such a command's whole run (bench/startup.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.settings_model import Settings

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "database_url"]

DEFAULT_DATABASE_URL = "sqlite:///training_runs.db"


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the database URL as ``Settings().database_url`` reads it from the environment."""
    environ = os.environ if environ is None else environ
    if "DATABASE_URL" in environ:
        return environ["DATABASE_URL"]
    # pydantic-settings matches variable names without regard to case.
    for name, value in environ.items():
        if name.upper() == "DATABASE_URL":
            return value
    return DEFAULT_DATABASE_URL


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from ingest.settings_model import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
