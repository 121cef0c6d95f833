"""Stalled runs on the read side: the API's run objects, the filter, the runs table and the run page."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask.testing import FlaskClient

from ingest import create_app
from ingest.settings import Settings
from ingest.worker import Worker
from tests.live import report, start_run
from tests.stalled import backdate_runs
from tests.web.conftest import READ


@pytest.fixture
def two_running(client: FlaskClient, worker: Worker) -> None:
    """Two running runs; the first one's last event an hour ago."""
    for run_id in ("quiet-run", "busy-run"):
        start_run(client, worker, run_id)
        report(client, run_id, 10, {"train/loss": 1.0})
    worker.run_once()
    backdate_runs(["quiet-run"], 3600)


def test_a_running_run_without_an_event_for_stale_after_seconds_is_stalled_in_the_api(
    client: FlaskClient, two_running: None
) -> None:
    assert client.get("/api/runs/quiet-run", headers=READ).get_json()["run"]["stalled"] is True
    assert client.get("/api/runs/busy-run", headers=READ).get_json()["run"]["stalled"] is False
    page = client.get("/api/runs", headers=READ).get_json()
    assert {run["run_id"]: run["stalled"] for run in page["runs"]} == {"quiet-run": True, "busy-run": False}
    # A live run page learns it from the history it polls.
    polled = {
        run_id: client.get(f"/api/runs/{run_id}/history", query_string={"since_step": 10}, headers=READ).get_json()
        for run_id in ("quiet-run", "busy-run")
    }
    assert {run_id: (answer["status"], answer["stalled"]) for run_id, answer in polled.items()} == {
        "quiet-run": ("running", True),
        "busy-run": ("running", False),
    }


def test_the_filter_finds_stalled_runs(client: FlaskClient, two_running: None) -> None:
    stalled = client.get("/api/runs", query_string={"filter": "stalled = true"}, headers=READ).get_json()
    live = client.get("/api/runs", query_string={"filter": "stalled = false"}, headers=READ).get_json()
    assert [run["run_id"] for run in stalled["runs"]] == ["quiet-run"]
    assert [run["run_id"] for run in live["runs"]] == ["busy-run"]


def test_a_bad_stalled_filter_is_a_400_naming_the_problem(client: FlaskClient, two_running: None) -> None:
    response = client.get("/api/runs", query_string={"filter": "stalled = 'yes'"}, headers=READ)
    assert response.status_code == 400
    assert response.get_json()["message"] == "filter: stalled compares with true or false, not 'yes' at 1:11"


def test_an_event_makes_a_stalled_run_live_again(
    client: FlaskClient, worker: Worker, two_running: None
) -> None:
    report(client, "quiet-run", 20, {"train/loss": 0.9})
    worker.run_once()
    assert client.get("/api/runs/quiet-run", headers=READ).get_json()["run"]["stalled"] is False


def test_stale_after_seconds_is_a_setting(settings: Settings, two_running: None) -> None:
    patient = create_app(settings.model_copy(update={"stale_after_seconds": 7200})).test_client()
    assert patient.get("/api/runs/quiet-run", headers=READ).get_json()["run"]["stalled"] is False
    create_app(settings)


def test_the_runs_table_and_the_run_page_mark_a_stalled_run(client: FlaskClient, two_running: None) -> None:
    html = unescape(client.get("/", headers=READ).get_data(as_text=True))
    rows = {
        run_id: row
        for row in html.split("<tr")
        for run_id in ("quiet-run", "busy-run")
        if f">{run_id}<" in row
    }
    assert ">stalled</span>" in rows["quiet-run"]
    assert "stalled" not in rows["busy-run"]

    quiet = client.get("/runs/quiet-run", headers=READ).get_data(as_text=True)
    busy = client.get("/runs/busy-run", headers=READ).get_data(as_text=True)
    assert "hidden" not in badge(quiet) and "hidden" in badge(busy)
    assert "stalled: no event for over 900 s" in quiet
    assert "stalled: no event" not in busy


def badge(html: str) -> str:
    found = re.search(r'<span[^>]*id="run-stalled"[^>]*>', html)
    assert found, "no stalled badge"
    return found.group(0)
