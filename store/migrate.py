"""Schema migrations with Alembic: upgrade to head, and tell whether a database is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from store.database import get_engine, unavailable_as_error

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """Return an Alembic configuration bound to ``engine`` (default: the store's)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine or get_engine()
    return config


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    """Upgrade the database schema to ``revision``; an unreachable database raises DatabaseUnavailable."""
    with unavailable_as_error():
        command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    """Return the newest migration's revision."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine | None = None) -> str | None:
    """Return the database's revision, or None for an empty database."""
    with unavailable_as_error(), (engine or get_engine()).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_is_current(engine: Engine | None = None) -> bool:
    """Tell whether the database schema is at the newest migration."""
    return current_revision(engine) == head_revision()


def init_db() -> None:
    """Create or upgrade the training database's schema (the store's tables)."""
    upgrade()
