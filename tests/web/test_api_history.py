"""/api/runs/<id>/history and /api/history: curves through the real app, from pipeline progress events."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from ingest.worker import Worker
from tests.live import report, start_run
from tests.web.conftest import READ
from tests.webhooks import post_pipeline


@pytest.fixture
def curves(client: FlaskClient, worker: Worker) -> None:
    """Three running runs of two methods, each with five points of loss and reward."""
    for index, (run_id, method) in enumerate((("run-a", "mgda"), ("run-b", "pcgrad"), ("run-c", "mgda"))):
        start_run(client, worker, run_id, method)
        for step in range(10, 60, 10):
            report(client, run_id, step, {"train/loss": 1 / step + index, "train/reward_mean": step / 100})
    report(client, "run-a", 60, {"train/reward_mean": 0.7})
    worker.run_once()


def get(client: FlaskClient, path: str, status: int = 200, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/json"
    return response.get_json()


def test_a_runs_history_has_its_steps_and_a_series_per_key(client: FlaskClient, curves: None) -> None:
    history = get(client, "/api/runs/run-a/history")
    assert history["run_id"] == "run-a"
    assert history["steps"] == [10, 20, 30, 40, 50, 60]
    assert history["last_step"] == 60
    assert history["series"]["train/loss"] == [0.1, 0.05, 1 / 30, 0.025, 0.02, None]
    assert history["series"]["train/reward_mean"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.7]


def test_since_step_gives_only_the_new_points(client: FlaskClient, curves: None) -> None:
    history = get(client, "/api/runs/run-a/history", since_step=40)
    assert history["steps"] == [50, 60]
    assert history["series"]["train/reward_mean"] == [0.5, 0.7]
    assert get(client, "/api/runs/run-a/history", since_step=60)["steps"] == []


def test_keys_and_max_points_narrow_the_answer(client: FlaskClient, curves: None) -> None:
    history = get(client, "/api/runs/run-b/history", keys="train/loss", max_points=2)
    assert list(history["series"]) == ["train/loss"]
    assert history["steps"] == [10, 50]


def test_a_point_sent_later_is_there_at_the_next_poll(
    client: FlaskClient, worker: Worker, curves: None
) -> None:
    last = get(client, "/api/runs/run-c/history")["last_step"]
    report(client, "run-c", 70, {"train/loss": 0.5})
    worker.run_once()
    history = get(client, "/api/runs/run-c/history", since_step=last)
    assert history["steps"] == [70]
    assert history["series"]["train/loss"] == [0.5]


def test_each_poll_carries_the_runs_status(client: FlaskClient, worker: Worker, curves: None) -> None:
    assert get(client, "/api/runs/run-b/history", since_step=50)["status"] == "running"
    finished = {"type": "run.finished", "timestamp": "2026-11-20T11:00:00Z", "data": {"run_id": "run-b"}}
    assert post_pipeline(client, finished).status_code == 202
    worker.run_once()
    answer = get(client, "/api/runs/run-b/history", since_step=50)
    assert (answer["status"], answer["stalled"], answer["steps"]) == ("completed", False, [])


def test_an_unknown_run_is_a_404(client: FlaskClient, curves: None) -> None:
    body = get(client, "/api/runs/no-such-run/history", status=404)
    assert body == {"error": "not_found", "message": "run 'no-such-run' not found"}


@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        ({"since_step": "ten"}, "since_step", "must be an integer"),
        ({"since_step": str(2**63)}, "since_step", "must be an integer"),
        ({"max_points": "0"}, "max_points", "must be an integer from 1 to 100000, not 0"),
        ({"keys": ",".join(f"k{i}" for i in range(65))}, "keys", "at most 64 keys, not 65"),
    ],
)
def test_bad_parameters_of_a_runs_history_are_400s_naming_them(
    client: FlaskClient, curves: None, params: dict[str, str], parameter: str, message: str
) -> None:
    body = get(client, "/api/runs/run-a/history", status=400, **params)
    assert body["error"] == "bad_parameter"
    assert body["parameter"] == parameter
    assert message in body["message"]


def test_a_parameter_given_twice_is_refused(client: FlaskClient, curves: None) -> None:
    response = client.get("/api/runs/run-a/history?since_step=1&since_step=2", headers=READ)
    assert response.status_code == 400
    assert response.get_json()["parameter"] == "since_step"


def test_one_key_across_the_matching_runs(client: FlaskClient, curves: None) -> None:
    overlay = get(client, "/api/history", key="train/loss", filter="gradient_method = 'mgda'")
    assert overlay["key"] == "train/loss"
    runs = {run["run_id"]: run for run in overlay["runs"]}
    assert set(runs) == {"run-a", "run-c"}
    assert runs["run-c"]["gradient_method"] == "mgda"
    assert runs["run-c"]["status"] == "running"
    assert runs["run-c"]["steps"] == [10, 20, 30, 40, 50]
    assert runs["run-c"]["values"] == pytest.approx([2 + 1 / s for s in (10, 20, 30, 40, 50)])
    assert len(get(client, "/api/history", key="train/loss", max_runs=2)["runs"]) == 2


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "key"),
        ({"key": "train/loss", "max_runs": "0"}, "max_runs"),
        ({"key": "train/loss", "max_runs": "101"}, "max_runs"),
        ({"key": "train/loss", "filter": "batchsize = 1"}, "filter"),
    ],
)
def test_bad_parameters_of_an_overlay_are_400s_naming_them(
    client: FlaskClient, curves: None, params: dict[str, str], parameter: str
) -> None:
    body = get(client, "/api/history", status=400, **params)
    assert body["parameter"] == parameter


def test_history_needs_the_read_token(client: FlaskClient, curves: None) -> None:
    assert client.get("/api/runs/run-a/history").status_code == 401
    assert client.get("/api/history?key=train/loss").status_code == 401


def test_the_openapi_document_describes_both(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    history = paths["/api/runs/{run_id}/history"]["get"]
    assert [p["name"] for p in history["parameters"]] == ["run_id", "keys", "since_step", "max_points"]
    assert set(history["responses"]) >= {"200", "400", "401", "404"}
    assert [p["name"] for p in paths["/api/history"]["get"]["parameters"]] == ["key", "filter", "max_runs"]
