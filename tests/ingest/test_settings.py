"""Configuration is read from the environment in one place, ingest/settings.py, and every documented variable works."""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection

import store
from ingest import create_app
from ingest.settings import DEFAULT_DATABASE_URL, Settings, database_url

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = (ROOT / "ingest" / "gunicorn_conf.py").read_text()


def documented_variables() -> list[str]:
    """Return the variables of the README's Configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|", section, re.MULTILINE)
    return [name for cell in cells for name in re.findall(r"`([A-Z_]+)`", cell)]


def test_the_readme_documents_the_variables_it_should() -> None:
    assert {"DATABASE_URL", "DATABASE_READ_URL", "WORKER_LEASE", "GUNICORN_TIMEOUT"} <= set(
        documented_variables()
    )


@pytest.mark.parametrize("name", documented_variables())
def test_each_documented_variable_is_read(name: str) -> None:
    # The web server's own variables are gunicorn's, read by its config file before the app exists.
    assert name.lower() in Settings.model_fields or re.search(
        rf"""environ\b.*["']{name}["']""", GUNICORN_CONF
    )


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"DATABASE_URL": "sqlite:////tmp/elsewhere.db"},
        {"database_url": "postgresql://u@h/db"},
        {"DATABASE_URL": ""},
    ],
    ids=["unset", "set", "lower-case", "empty"],
)
def test_read_commands_get_the_database_url_settings_would(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert database_url() == Settings().database_url
    assert database_url() == environment.get(
        "DATABASE_URL", environment.get("database_url", DEFAULT_DATABASE_URL)
    )


def test_the_store_reads_no_environment() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "store").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")
    ]
    assert readers == []



def test_each_process_opens_at_most_the_connections_its_settings_allow(postgres_url: str | None) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable (set TEST_POSTGRES_URL)")
    create_app(Settings(database_url=postgres_url, database_pool_size=2, database_max_overflow=1))
    engine = store.get_engine()
    held = [engine.connect() for _ in range(3)]
    fourth: list[Connection] = []
    waiting = threading.Thread(target=lambda: fourth.append(engine.connect()))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive(), "a fourth connection was opened past DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW"
    held.pop().close()
    waiting.join(30)
    assert len(fourth) == 1
    for connection in held + fourth:
        connection.close()
