"""PostgreSQL restarts while the service is idle: the very next deliveries and readiness checks succeed.

The connections the web processes keep from one request to the next are dead after a restart:
the inbox's own psycopg connections and SQLAlchemy's pool (behind /readyz). Neither may turn the
first requests after the restart into 503s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import store
from store import inbox
from tests.faults.services import PrivatePostgres, private_postgres, web_server
from tests.webhooks import pipeline_event, pipeline_headers

WEB_WORKERS = 2


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as cluster:
        engine = store.configure(cluster.url)
        yield cluster
        engine.dispose()


def deliver(url: str, webhook_id: str) -> int:
    body = json.dumps(pipeline_event("run.started", f"run-{webhook_id}")).encode()
    response = requests.post(
        f"{url}/webhooks/pipeline", data=body, headers=pipeline_headers(body, webhook_id), timeout=10
    )
    return response.status_code


def ready(url: str) -> int:
    return requests.get(f"{url}/readyz", timeout=10).status_code


@pytest.mark.slow
def test_the_first_deliveries_and_readiness_checks_after_a_restart_succeed(
    cluster: PrivatePostgres, tmp_path: Path
) -> None:
    with web_server(cluster.url, tmp_path, workers=WEB_WORKERS) as server:
        # Every web worker holds connections of both kinds, as a service that has been serving does.
        warm = [deliver(server.url, f"warm{n}") for n in range(20)] + [ready(server.url) for _ in range(20)]
        assert set(warm) == {200, 202}

        cluster.stop()
        time.sleep(1)
        cluster.start()
        after = [(deliver(server.url, f"after{n}"), ready(server.url)) for n in range(10)]

    assert after == [(202, 200)] * 10
    assert len(inbox.list_deliveries(limit=100)) == 30
