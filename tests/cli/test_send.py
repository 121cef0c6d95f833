"""`training-db send`: its refusals name the command's own options and keep the server's details."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from ingest.cli import main
from tests.conftest import PIPELINE_SECRET


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """Serve the app on a free loopback port for the test; yield its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_a_refused_event_shows_the_servers_field_errors(served: str) -> None:
    result = CliRunner().invoke(
        main, ["send", "run.launched", "--run-id", "r1", "--url", served, "--secret", PIPELINE_SECRET]
    )

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "refused the event (422)" in lines[0]
    assert "run.launched.data.config: Field required" in lines[0]


def test_no_secret_names_the_option_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["send", "run.launched", "--run-id", "r1", "--data", '{"config": {}}'])

    assert result.exit_code == 1
    assert result.stderr == "Error: no signing secret: pass --secret or set PIPELINE_WEBHOOK_SECRET\n"
