"""The filter parameter: the same filter language on every read endpoint, its errors a 400 with the position."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

import store
from testkit.factory import generate_runs
from tests.web.conftest import READ

RUNS = 50
FILTER = "gradient_method in ('mgda', 'pcgrad') and (batch_size >= 64 or summary.train/loss < 0.5)"


@pytest.fixture
def loaded(client: FlaskClient) -> None:
    store.load_runs(generate_runs(RUNS, seed=5))


def get(client: FlaskClient, path: str, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def expected_ids(client: FlaskClient) -> set[str]:
    rows = get(
        client, "/api/runs", fields="run_id,gradient_method,batch_size,summary.train/loss", limit=1000
    )["runs"]
    return {
        r["run_id"]
        for r in rows
        if r["gradient_method"] in ("mgda", "pcgrad")
        and (
            (r["batch_size"] is not None and r["batch_size"] >= 64)
            or (isinstance(r["summary.train/loss"], float) and r["summary.train/loss"] < 0.5)
        )
    }


def test_runs_pages_and_the_total_follow_the_filter(client: FlaskClient, loaded: None) -> None:
    expected = expected_ids(client)
    assert 0 < len(expected) < RUNS
    first = get(client, "/api/runs", filter=FILTER, limit=4, fields="run_id")
    assert first["total"] == len(expected)
    seen = [r["run_id"] for r in first["runs"]]
    cursor = first["next_cursor"]
    while cursor:
        page = get(client, "/api/runs", filter=FILTER, limit=4, fields="run_id", cursor=cursor)
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(expected)


def test_jsonl_streams_only_the_matches(client: FlaskClient, loaded: None) -> None:
    response = client.get(
        "/api/runs", query_string={"filter": FILTER, "format": "jsonl", "fields": "run_id"}, headers=READ
    )
    assert {line.split('"')[3] for line in response.get_data(as_text=True).splitlines()} == expected_ids(
        client
    )


def test_a_filter_on_an_objective_narrows_compare_pareto_and_stats(client: FlaskClient, loaded: None) -> None:
    where = "objective.DRD5_activity.raw_mean > 0.5 and status = 'completed'"
    rows = get(
        client,
        "/api/runs",
        fields="run_id,status,objective.DRD5_activity.raw_mean,objective.COMT_activity.raw_mean",
        limit=1000,
    )["runs"]
    matching = [
        r for r in rows if r["status"] == "completed" and (r["objective.DRD5_activity.raw_mean"] or 0) > 0.5
    ]
    compared = get(client, "/api/compare", objective="DRD5_activity", filter=where)
    assert sum(g["n"] for g in compared["groups"]) == len(matching)
    assert min(g["min"] for g in compared["groups"]) > 0.5
    pareto = get(client, "/api/pareto", objectives="DRD5_activity,COMT_activity", filter=where)
    assert pareto["considered"] == sum(
        1 for r in matching if r["objective.COMT_activity.raw_mean"] is not None
    )
    stats = get(client, "/api/stats", filter=where)
    assert stats["total"] == len(matching)
    assert all(g["completed"] == g["runs"] for g in stats["groups"])


@pytest.mark.parametrize("path", ["/api/runs", "/api/compare", "/api/pareto", "/api/stats"])
def test_a_bad_filter_is_a_400_with_the_position_and_a_suggestion(client: FlaskClient, path: str) -> None:
    params = {
        "filter": "batchsize > 4",
        "objective": "DRD5_activity",
        "objectives": "DRD5_activity,COMT_activity",
    }
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == 400
    body = response.get_json()
    assert body["parameter"] == "filter"
    assert body["message"] == "filter: unknown field 'batchsize' at 1:1; did you mean 'batch_size'?"
    assert (body["line"], body["column"], body["position"]) == (1, 1, 0)


def test_a_filter_that_does_not_parse_says_where(client: FlaskClient) -> None:
    response = client.get("/api/runs", query_string={"filter": "batch_size > "}, headers=READ)
    assert response.status_code == 400
    assert response.get_json()["column"] == 14
