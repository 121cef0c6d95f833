"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, text

from ingest import create_app
from ingest.settings import Settings
from tests.conftest import PIPELINE_SECRET
from tests.webhooks import fixture, post_pipeline, post_s3


def test_healthz_answers_while_the_process_is_alive(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_answers_200_when_the_schema_is_at_head(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json["status"] == "ready"


def test_readyz_answers_503_when_the_schema_is_behind(client, database_url):
    engine = create_engine(database_url)
    with engine.begin() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        connection.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        response = client.get("/readyz")
    finally:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        engine.dispose()

    assert response.status_code == 503
    assert response.json["error"] == "schema_behind"
    assert "training-db migrate" in response.json["message"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reads_from_a_database_never_migrated_say_to_migrate(backend, tmp_path, request, caplog):
    url = f"sqlite:///{tmp_path}/empty.db" if backend == "sqlite" else request.getfixturevalue("unmigrated_postgres")
    settings = Settings(database_url=url, read_api_token="token", pipeline_webhook_secret=PIPELINE_SECRET)
    client = create_app(settings).test_client()
    reader = {"Authorization": "Bearer token"}

    told = {"error": "schema_behind", "message": "the database has no training-db tables: run `training-db migrate`"}
    for path in ("/api/runs", "/api/runs/run-1/history?since_step=5", "/api/history?key=train/loss", "/api/stats"):
        response = client.get(path, headers=reader)
        assert (response.status_code, response.json) == (503, told), path
    # A sender's delivery is refused with the same words; it retries a 503.
    delivery = post_pipeline(client, fixture("pipeline", "run_started__basic"))
    assert (delivery.status_code, delivery.json) == (503, told)
    assert "Traceback" not in caplog.text


def test_readyz_keeps_where_the_database_is_for_the_log(settings, sns_signer, caplog):
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    client = create_app(down, fetch_pem=sns_signer.fetch_pem).test_client()

    ready = client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json["error"] == "database_unavailable"
    assert "127.0.0.1" not in ready.get_data(as_text=True)
    assert ":1" not in ready.json["message"]
    assert "127.0.0.1" in caplog.text


def test_readyz_and_webhooks_answer_503_when_the_database_is_unreachable(settings, sns_signer):
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    client = create_app(down, fetch_pem=sns_signer.fetch_pem).test_client()

    ready = client.get("/readyz")
    delivery = post_pipeline(client, fixture("pipeline", "run_launched__basic"))

    assert ready.status_code == 503
    assert delivery.status_code == 503
    assert delivery.json["error"] == "database_unavailable"
    assert delivery.headers["Retry-After"]


def test_metrics_count_received_rejected_and_duplicate_deliveries_and_the_inbox(client):
    post_s3(client, fixture("s3", "object_created__put"))
    post_s3(client, fixture("s3", "object_created__put"))
    post_s3(client, fixture("s3", "object_created__put"), token="wrong")

    text_format = client.get("/metrics").get_data(as_text=True)

    assert 'training_db_webhooks_received_total{source="s3"}' in text_format
    assert 'training_db_webhooks_rejected_total{reason="bad_token",source="s3"}' in text_format
    assert 'training_db_webhooks_duplicates_total{source="s3"}' in text_format
    assert 'training_db_inbox_events{source="s3",status="pending"} 1.0' in text_format
    assert "training_db_inbox_lag_seconds" in text_format


def test_the_openapi_document_describes_every_endpoint_with_generated_schemas(client):
    document = client.get("/openapi.json").json

    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/webhooks/pipeline",
        "/webhooks/wandb",
        "/webhooks/s3",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/objectives",
        "/api/compare",
        "/api/pareto",
        "/api/stats",
        "/api/events",
        "/api/events/{event_id}/replay",
        "/api/runs/{run_id}/scaffolds",
        "/api/runs/{run_id}/history",
        "/api/runs/{run_id}/history/stream",
        "/api/history",
        "/api/scaffolds",
        "/api/diversity",
        "/api/scaffold.svg",
    }
    assert "RunLaunched" in document["components"]["schemas"]
    assert "SnsEnvelope" in document["components"]["schemas"]
    assert set(document["paths"]["/webhooks/s3"]["post"]["responses"]) >= {
        "200",
        "202",
        "400",
        "401",
        "403",
        "413",
        "503",
    }


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nowhere").json["error"] == "not_found"
    assert client.get("/webhooks/pipeline").status_code == 405
    assert "error" in client.get("/webhooks/pipeline").json


def test_a_method_not_allowed_is_answered_with_the_methods_that_are(client):
    refused = client.put("/webhooks/wandb", data=b"{}")
    refused_get = client.delete("/readyz")

    assert refused.status_code == 405
    assert set(refused.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert refused_get.status_code == 405
    assert set(refused_get.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_the_document_refuses_the_nul_the_endpoints_refuse(client):
    from tests.faults.test_fuzz_openapi import valid_under_the_document
    from tests.webhooks import fixture_json, pipeline_event, post_wandb

    document = client.get("/openapi.json").json
    wandb = fixture_json("wandb", "run_state__finished")
    started = pipeline_event("run.started", "run-1")
    cases = [
        ("/webhooks/wandb", {**wandb, "event_author": "a\x00b"}, post_wandb),
        ("/webhooks/wandb", {**wandb, "extra": {"a\x00": 1}}, post_wandb),
        ("/webhooks/pipeline", {**started, "data": {**started["data"], "note": ["\x00"]}}, post_pipeline),
    ]
    for path, body, post in cases:
        raw = json.dumps(body).encode()
        assert not valid_under_the_document(document, path, raw)
        assert post(client, raw).status_code == 422
    assert valid_under_the_document(document, "/webhooks/wandb", json.dumps(wandb).encode())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_deliveries_and_readiness_survive_the_server_ending_idle_connections(client, database_url):
    import psycopg

    from store.database import libpq_url

    assert post_pipeline(client, fixture("pipeline", "run_started__basic")).status_code == 202
    assert client.get("/readyz").status_code == 200
    # What a restart of the server does to every connection the app keeps between requests.
    with psycopg.connect(libpq_url(), autocommit=True) as admin:
        others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        admin.execute(f"SELECT pg_terminate_backend(pid) {others}")
        deadline = time.monotonic() + 10
        while admin.execute(f"SELECT count(*) {others}").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)

    assert post_pipeline(client, fixture("pipeline", "run_launched__basic")).status_code == 202
    assert client.get("/readyz").status_code == 200
