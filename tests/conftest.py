"""Fixtures: the store on real databases, SQLite always and PostgreSQL where reachable.

PostgreSQL comes from TEST_POSTGRES_URL; when it is unset the default local server
is tried. Under CI (CI=true) an unreachable PostgreSQL fails the run instead of
skipping its tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import store
from ingest import create_app
from ingest.settings import Settings
from ingest.worker import Worker
from store import migrate
from store.database import make_engine, normalize_url
from store.models import Base
from tests.sns_signer import SnsSigner

# CI explores the same examples on every run, so a landing never hangs on a new random draw;
# local runs keep exploring new ones.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis.settings.load_profile("ci")

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def _postgres_admin_url() -> str | None:
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return normalize_url(url)
    try:
        engine = create_engine(DEFAULT_POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        if os.environ.get("CI") == "true":
            raise
        return None
    return DEFAULT_POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> Iterator[str | None]:
    """Create a private PostgreSQL database for this test process, migrated to head."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        yield None
        return
    name = f"training_db_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def unmigrated_postgres() -> Iterator[str]:
    """Create an empty PostgreSQL database for the test, dropped after it."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip("PostgreSQL is not reachable (set TEST_POSTGRES_URL)")
    name = f"training_db_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite file that every test copies."""
    path = tmp_path_factory.mktemp("template") / "training_runs.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    # Closing the last connection checkpoints the WAL into the file that tests copy.
    engine.dispose()
    return path


_postgres_engines: dict[str, Engine] = {}


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """Yield the URL of an empty, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "training_runs.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    if url is None:
        pytest.skip("PostgreSQL is not reachable (set TEST_POSTGRES_URL)")
    yield url
    # DELETE beats TRUNCATE on tables this small: TRUNCATE rewrites files and takes strong locks.
    engine = _postgres_engines.setdefault(url, create_engine(url, poolclass=NullPool))
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the store at an empty database of each backend; yield the backend's name."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    engine = store.configure(database_url)
    yield engine.dialect.name
    engine.dispose()


@pytest.fixture(scope="session")
def worker_id() -> str:
    """Name this test process (pytest-xdist overrides it with gw0, gw1...)."""
    return "main"


PIPELINE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WANDB_TOKEN = "wandb-token-for-tests"
WANDB_SECRET = "wandb-secret-for-tests"
S3_TOKEN = "s3-token-for-tests"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:crash-reports"


@pytest.fixture
def settings(db: str, database_url: str) -> Settings:
    """Settings with every source configured, on each backend."""
    return Settings(
        database_url=database_url,
        pipeline_webhook_secret=PIPELINE_SECRET,
        wandb_webhook_token=WANDB_TOKEN,
        wandb_webhook_secret=WANDB_SECRET,
        s3_webhook_token=S3_TOKEN,
        sns_topic_arns=[TOPIC_ARN],
    )


@pytest.fixture(scope="session")
def sns_signer() -> SnsSigner:
    """A key and certificate that sign SNS messages as AWS would."""
    return SnsSigner()


@pytest.fixture
def app(settings: Settings, sns_signer: SnsSigner) -> Flask:
    """The real ingester app on each backend, fetching SNS certificates from the test signer."""
    return create_app(settings, fetch_pem=sns_signer.fetch_pem)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def worker(settings: Settings) -> Worker:
    """A worker on the same database as the app; tests call run_once()."""
    return Worker(settings)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Serve AWS (S3, SQS, SNS) with moto on loopback."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3, in the tests and in the code under test, at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_endpoint
