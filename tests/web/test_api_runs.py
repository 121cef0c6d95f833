"""/api/runs and /api/runs/<id>: pages with their total, keyset cursors, fields, JSON lines, one run whole."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import store
from ingest import create_app
from store import jsoncodec
from testkit.factory import generate_runs, load_record
from tests.web.conftest import READ

RUNS = 40


@pytest.fixture
def loaded(client: FlaskClient) -> list[str]:
    """Forty generated runs (every status, crash keys, objectives); return their ids."""
    records = list(generate_runs(RUNS, seed=3))
    store.load_runs(records)
    return [record["run_id"] for record in records]


def get(client: FlaskClient, path: str, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def all_pages(client: FlaskClient, **params: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = get(client, "/api/runs", **params, **({"cursor": cursor} if cursor else {}))
        runs += page["runs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return runs


def test_the_first_page_has_the_exact_total_and_the_typed_columns(
    client: FlaskClient, loaded: list[str]
) -> None:
    page = get(client, "/api/runs", limit=10)
    assert page["total"] == RUNS
    assert len(page["runs"]) == 10
    assert page["next_cursor"] is not None
    first = page["runs"][0]
    assert "gradient_method" in first and "config" not in first
    created = [run["created_at"] for run in page["runs"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    "order_by",
    [
        "-created_at",
        "run_id",
        "-batch_size",
        "learning_rate",
        "status",
        "config.training.warmup_steps",
        "-summary.train/loss",
        "objective.DRD5_activity.raw_mean",
        "-objective.COMT_activity.normalized_mean",
    ],
)
def test_paging_through_gives_every_run_once_in_the_order_of_one_big_page(
    client: FlaskClient, loaded: list[str], order_by: str
) -> None:
    fields = "run_id,batch_size"
    whole = get(client, "/api/runs", order_by=order_by, limit=1000, fields=fields)["runs"]
    paged = all_pages(client, order_by=order_by, limit=3, fields=fields)
    assert paged == whole
    assert sorted(run["run_id"] for run in paged) == sorted(loaded)


def test_nulls_sort_last_both_ways(client: FlaskClient, loaded: list[str]) -> None:
    for order_by in ("summary.train/loss", "-summary.train/loss"):
        values = [
            run["summary.train/loss"]
            for run in all_pages(client, order_by=order_by, limit=7, fields="summary.train/loss")
        ]
        present = [v for v in values if v is not None]
        assert values == present + [None] * (len(values) - len(present))
        assert present == sorted(present, reverse=order_by.startswith("-"))
        assert len(present) < len(values)  # running runs have no summary


def test_pages_stay_stable_while_runs_arrive(client: FlaskClient, loaded: list[str]) -> None:
    for order_by in ("-created_at", "run_id"):
        expected = [
            run["run_id"]
            for run in get(client, "/api/runs", order_by=order_by, limit=1000, fields="run_id")["runs"]
        ]
        seen: list[str] = []
        page = get(client, "/api/runs", order_by=order_by, limit=6, fields="run_id")
        arrivals = 0
        while True:
            seen += [run["run_id"] for run in page["runs"]]
            if page["next_cursor"] is None:
                break
            # Newest runs (first in -created_at), and ids that sort among the ones not yet seen.
            for suffix in ("new", "zzz"):
                store.insert_run(f"run-003-{arrivals:07d}-{suffix}-{order_by}")
            arrivals += 1
            page = get(
                client, "/api/runs", order_by=order_by, limit=6, fields="run_id", cursor=page["next_cursor"]
            )
        assert len(seen) == len(set(seen))
        assert [run_id for run_id in seen if run_id in set(expected)] == expected


def test_fields_pick_columns_json_paths_documents_and_objective_statistics(
    client: FlaskClient, loaded: list[str]
) -> None:
    fields = (
        "run_id,status,config.training.batch_size,summary.train/loss,objective.DRD5_activity.raw_mean,config"
    )
    runs = get(client, "/api/runs", fields=fields, limit=1000)["runs"]
    for run in runs:
        assert list(run) == fields.split(",")
        stored = store.get_run(run["run_id"])
        assert stored is not None
        assert run["status"] == stored["status"]
        assert run["config"] == json.loads(json.dumps(stored["config_json"]))
        assert run["config.training.batch_size"] == stored["config_json"]["training"]["batch_size"]
        summary = stored["final_metrics_json"] or {}
        assert run["summary.train/loss"] == summary.get("train/loss")
        drd5 = [o["raw_mean"] for o in stored["objectives"] if o["objective_name"] == "DRD5_activity"]
        assert run["objective.DRD5_activity.raw_mean"] == (drd5[0] if drd5 else None)


@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        ({"limit": "0"}, "limit", "from 1 to 1000"),
        ({"limit": "1001"}, "limit", "from 1 to 1000"),
        ({"limit": "ten"}, "limit", "from 1 to 1000"),
        ({"order_by": "batchsize"}, None, "did you mean 'batch_size'"),
        ({"order_by": "-"}, None, "names no field"),
        ({"order_by": "config"}, None, "whole document"),
        ({"fields": "run_id,batchsize"}, None, "did you mean 'batch_size'"),
        ({"fields": "objective.DRD5_activity.best"}, None, "objective.NAME.STAT"),
        ({"cursor": "not-a-cursor"}, None, "not a cursor"),
        ({"format": "xml"}, "format", "json or jsonl"),
    ],
)
def test_bad_parameters_get_400_naming_the_problem(
    client: FlaskClient, loaded: list[str], params: dict[str, str], parameter: str | None, message: str
) -> None:
    response = client.get("/api/runs", query_string=params, headers=READ)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_parameter"
    assert message in body["message"]
    assert body.get("parameter") == parameter


def test_a_cursor_continues_only_its_own_ordering(client: FlaskClient, loaded: list[str]) -> None:
    cursor = get(client, "/api/runs", limit=2)["next_cursor"]
    response = client.get("/api/runs", query_string={"cursor": cursor, "order_by": "run_id"}, headers=READ)
    assert response.status_code == 400
    assert "-created_at" in response.get_json()["message"]


def test_jsonl_streams_every_match_with_documents_as_stored(client: FlaskClient, loaded: list[str]) -> None:
    response = client.get("/api/runs", query_string={"format": "jsonl", "order_by": "run_id"}, headers=READ)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = response.get_data().decode().splitlines()
    assert len(lines) == RUNS
    runs = [jsoncodec.loads(line) for line in lines]
    assert [run["run_id"] for run in runs] == sorted(loaded)
    for run in runs:
        stored = store.get_run(run["run_id"])
        assert stored is not None
        # Through the codec: NaN equals nothing, not even itself.
        for document, column in (("config", "config_json"), ("summary", "final_metrics_json")):
            assert jsoncodec.dumps(run[document], sort_keys=True) == jsoncodec.dumps(
                stored[column], sort_keys=True
            )
        assert run["status"] == stored["status"]
        assert datetime.fromisoformat(run["created_at"]) == stored["created_at"]


def test_jsonl_keeps_the_stored_encoding_of_floats_json_cannot_hold(client: FlaskClient) -> None:
    store.insert_run("nan-run", config_dict={"training": {"batch_size": 8}})
    store.update_run_status("nan-run", "completed", final_metrics_json={"loss": math.nan, "big": 1e16})
    response = client.get(
        "/api/runs", query_string={"format": "jsonl", "fields": "run_id,summary"}, headers=READ
    )
    line = response.get_data().decode().strip()
    assert json.loads(line)["summary"]["loss"] == {"$float": "NaN"}
    decoded = jsoncodec.loads(line)["summary"]
    assert math.isnan(decoded["loss"]) and decoded["big"] == 1e16


def test_jsonl_takes_fields(client: FlaskClient, loaded: list[str]) -> None:
    response = client.get(
        "/api/runs",
        query_string={
            "format": "jsonl",
            "fields": "run_id,config.training.batch_size,objective.DRD5_activity.raw_mean",
        },
        headers=READ,
    )
    rows = [json.loads(line) for line in response.get_data().decode().splitlines()]
    paged = get(
        client,
        "/api/runs",
        limit=1000,
        fields="run_id,config.training.batch_size,objective.DRD5_activity.raw_mean",
    )
    assert rows == paged["runs"]


def test_jsonl_with_a_bad_parameter_is_a_400_not_a_broken_stream(
    client: FlaskClient, loaded: list[str]
) -> None:
    response = client.get("/api/runs", query_string={"format": "jsonl", "fields": "nope"}, headers=READ)
    assert response.status_code == 400


def test_one_run_whole_with_objectives_links_and_wandb_page(client: FlaskClient, loaded: list[str]) -> None:
    crashed = next(r for r in generate_runs(RUNS, seed=3) if r["crash"])
    run = get(client, f"/api/runs/{crashed['run_id']}")["run"]
    assert run["run_id"] == crashed["run_id"]
    assert run["status"] == "crashed"
    assert run["config_json"] == json.loads(json.dumps(crashed["config"]))
    assert {o["objective_name"] for o in run["objectives"]} == {
        o["name"] for o in crashed["config"]["objectives"]
    }
    assert (
        run["wandb_url"]
        == f"https://wandb.ai/{crashed['entity']}/{crashed['project']}/runs/{crashed['wandb_run_id']}"
    )
    assert run["crash_report_s3_key"] == crashed["crash"]["keys"][1]
    # Without CRASH_REPORT_BUCKET there is nothing to sign.
    assert run["links"]["crash_report_s3_key"] is None


def test_crash_reports_get_presigned_links_when_the_bucket_is_set(
    app: Flask, loaded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    app.config["SETTINGS"] = app.config["SETTINGS"].model_copy(update={"crash_report_bucket": "crash-bucket"})
    crashed = next(r for r in generate_runs(RUNS, seed=3) if r["crash"])
    run = get(app.test_client(), f"/api/runs/{crashed['run_id']}")["run"]
    link = run["links"]["crash_report_s3_key"]
    assert link.startswith("https://crash-bucket.s3.amazonaws.com/" + crashed["crash"]["keys"][1])
    assert "X-Amz-Signature=" in link or "Signature=" in link


def test_an_unknown_run_is_a_404(client: FlaskClient, loaded: list[str]) -> None:
    response = client.get("/api/runs/no-such-run", headers=READ)
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "run 'no-such-run' not found"}


def test_a_run_loaded_call_by_call_reads_the_same(client: FlaskClient) -> None:
    record = next(generate_runs(1, seed=9))
    load_record(record)
    run = get(client, f"/api/runs/{record['run_id']}")["run"]
    assert run["chain_of_custody_id"] == record["chain_of_custody_id"]


def test_database_read_url_serves_the_reads(settings: Any, sqlite_template: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica.db"
    shutil.copy(sqlite_template, replica)
    store.configure(f"sqlite:///{replica}")
    store.insert_run("on-the-replica")
    client = create_app(
        settings.model_copy(update={"database_read_url": f"sqlite:///{replica}"})
    ).test_client()
    store.insert_run("on-the-primary")
    assert [r["run_id"] for r in get(client, "/api/runs")["runs"]] == ["on-the-replica"]
    assert client.get("/api/runs/on-the-primary", headers=READ).status_code == 404
    assert store.get_run("on-the-primary") is not None


@pytest.mark.parametrize(
    "path",
    [
        "/api/compare?objective=a%00b",
        "/api/runs?order_by=config.a%00b",
        "/api/runs?filter=status%20%3D%20%27a%00%27",
    ],
)
def test_a_nul_character_in_a_parameter_is_a_400(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers=READ)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["message"]


def test_a_nul_character_in_a_run_id_is_a_404(client: FlaskClient) -> None:
    assert client.get("/api/runs/a%00b", headers=READ).status_code == 404
