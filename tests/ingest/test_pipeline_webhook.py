"""POST /webhooks/pipeline: signed run events from the training pipeline, through the real app."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import store
from store import inbox
from tests.webhooks import fixture, fixture_json, pipeline_event, pipeline_headers, post_pipeline

RUN_ID = "run-000-0000042"


def test_a_launch_is_accepted_then_processed_into_the_run_and_its_objectives(client, worker):
    response = post_pipeline(client, fixture("pipeline", "run_launched__basic"))

    assert response.status_code == 202
    assert response.json["status"] == "accepted"
    assert worker.run_once() == 1
    run = store.get_run(RUN_ID)
    assert run["status"] == "launched"
    assert run["gradient_method"] == "mgda"
    assert run["batch_size"] == 64
    assert run["instance_type"] == "p4d.24xlarge"
    assert run["wandb_run_id"] == "b4ctzkk6"
    assert run["created_at"] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert run["config_json"] == fixture_json("pipeline", "run_launched__basic")["data"]["config"]
    assert [o["objective_name"] for o in run["objectives"]] == ["COMT_activity", "DRD5_activity", "QED"]
    assert run["objectives"][0]["uniprot"] == "P21964"


def test_the_stored_body_is_byte_for_byte_what_was_sent(client):
    raw = fixture("pipeline", "run_launched__basic")

    event_id = post_pipeline(client, raw, webhook_id="msg_exact").json["event_id"]

    delivery = inbox.get_delivery(event_id)
    assert delivery.body == raw
    assert delivery.headers["webhook-id"] == "msg_exact"
    assert delivery.kind == "run.launched"


def test_a_finished_run_gets_its_whole_summary_final_fields_and_objective_values(client, worker):
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    post_pipeline(client, fixture("pipeline", "run_finished__with_summary"))
    worker.run_once()

    run = store.get_run(RUN_ID)
    assert run["status"] == "completed"
    assert run["final_loss"] == 0.4231
    assert run["total_training_steps"] == 20000
    assert run["duration_seconds"] == 7200
    summary = run["final_metrics_json"]
    assert summary["eval/igd"] != summary["eval/igd"]  # NaN survives
    assert summary["train/grad_norm"] == float("inf")
    comt = next(o for o in run["objectives"] if o["objective_name"] == "COMT_activity")
    assert (comt["raw_mean"], comt["normalized_mean"], comt["raw_std"]) == (0.856, 0.892, 0.11)
    assert comt["extra_metrics_json"] == {"top10_mean": 0.97, "raw_max": 0.99}


@pytest.mark.parametrize(
    ("name", "status"),
    [("run_failed__basic", "failed"), ("run_killed__basic", "killed")],
)
def test_failed_and_killed_runs_get_their_status(client, worker, name, status):
    post_pipeline(client, fixture("pipeline", "run_launched__flat_config"))
    post_pipeline(client, fixture("pipeline", name))
    worker.run_once()

    assert store.get_run("run-000-0000043")["status"] == status


def test_a_flat_config_fills_the_same_typed_columns(client, worker):
    post_pipeline(client, fixture("pipeline", "run_launched__flat_config"))
    worker.run_once()

    run = store.get_run("run-000-0000043")
    assert (run["gradient_method"], run["batch_size"], run["model_name"], run["seed"]) == (
        "pcgrad",
        32,
        "molformer-xl",
        7,
    )
    assert (run["optimizer"], run["instance_type"], run["git_commit"]) == ("adam", "g5.12xlarge", "abc123")


def test_progress_is_visible_in_the_run_while_it_trains(client, worker):
    post_pipeline(client, fixture("pipeline", "run_started__basic"))
    post_pipeline(client, fixture("pipeline", "run_progress__step_500"))
    post_pipeline(client, pipeline_event("run.progress", RUN_ID, step=400, metrics={"train/loss": 9.0}))
    worker.run_once()

    run = store.get_run(RUN_ID)
    assert run["status"] == "running"
    assert run["last_step"] == 500
    assert run["progress_json"] == {"train/loss": 1.25, "train/reward_mean": 0.41}


def test_a_crash_keeps_the_error_and_crash_keys(client, worker):
    post_pipeline(client, fixture("pipeline", "run_crashed__with_keys"))
    worker.run_once()

    run = store.get_run(RUN_ID)
    assert run["status"] == "crashed"
    assert run["error_message"] == "CUDA error: out of memory"
    assert run["error_log_s3_key"] == "crash-reports/run-000-0000042/error.log"
    assert run["crash_report_s3_key"] == "crash-reports/run-000-0000042/report.md"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("run_attachment__both", "unknown"),
        ("run_started__basic", "running"),
        ("run_progress__step_500", "running"),
        ("run_finished__with_summary", "completed"),
        ("run_crashed__with_keys", "crashed"),
    ],
)
def test_an_event_before_the_launch_gives_the_run_the_state_it_tells_or_unknown(client, worker, name, status):
    post_pipeline(client, fixture("pipeline", name))
    worker.run_once()
    before_launch = store.get_run(RUN_ID)["status"]
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    worker.run_once()

    assert before_launch == status
    assert store.get_run(RUN_ID)["status"] == ("launched" if status == "unknown" else status)


def test_attachments_record_the_conversation_and_blog_post(client, worker):
    post_pipeline(client, fixture("pipeline", "run_attachment__both"))
    worker.run_once()

    run = store.get_run(RUN_ID)
    assert run["conversation_s3_key"] == "conversations/run-000-0000042.json"
    assert run["blog_post_url"] == "https://blog.example.com/mgda-comt"


def test_a_late_start_never_overwrites_a_completed_run(client, worker):
    post_pipeline(client, fixture("pipeline", "run_finished__with_summary"))
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    post_pipeline(client, fixture("pipeline", "run_started__basic"))
    worker.run_once()

    run = store.get_run(RUN_ID)
    assert run["status"] == "completed"
    assert run["batch_size"] == 64
    assert next(o for o in run["objectives"] if o["objective_name"] == "QED")["raw_mean"] == 0.66


def test_the_same_webhook_id_twice_is_a_duplicate_that_changes_nothing(client, worker):
    raw = fixture("pipeline", "run_launched__basic")
    first = post_pipeline(client, raw, webhook_id="msg_1")
    second = post_pipeline(client, raw, webhook_id="msg_1")

    assert second.status_code == 200
    assert second.json == {"status": "duplicate", "event_id": first.json["event_id"]}
    assert worker.run_once() == 1


def test_a_bad_signature_is_refused_and_nothing_is_stored(client):
    response = post_pipeline(
        client,
        fixture("pipeline", "run_launched__basic"),
        secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
    )

    assert response.status_code == 401
    assert response.json["error"] == "bad_signature"
    assert inbox.list_deliveries() == []


def test_during_a_secret_rotation_one_matching_signature_of_several_is_enough(client):
    raw = fixture("pipeline", "run_launched__basic")
    headers = pipeline_headers(raw, "msg_rotated")
    old = pipeline_headers(raw, "msg_rotated", secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    headers["webhook-signature"] = f"{old['webhook-signature']} {headers['webhook-signature']}"

    response = client.post("/webhooks/pipeline", data=raw, headers=headers)

    assert response.status_code == 202


def signed_environ(client, raw: bytes, headers: dict[str, str], **wsgi_values: str) -> dict:
    """Return the WSGI environ of a POST of ``raw``, with values set as a WSGI server sets them."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(
        path="/webhooks/pipeline", method="POST", data=raw, headers=headers
    ).get_environ()
    return {**environ, **wsgi_values}


@pytest.mark.parametrize("joined", [", ", ","])
def test_two_signature_headers_joined_by_the_server_are_each_checked(client, joined):
    raw = fixture("pipeline", "run_launched__basic")
    headers = pipeline_headers(raw, "msg_twice")
    old = pipeline_headers(raw, "msg_twice", secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    both = joined.join([old["webhook-signature"], headers["webhook-signature"]])

    response = client.open(signed_environ(client, raw, headers, HTTP_WEBHOOK_SIGNATURE=both))

    assert response.status_code == 202


def test_a_signed_webhook_id_with_non_ascii_characters_is_accepted_as_sent(client):
    raw = fixture("pipeline", "run_launched__basic")
    webhook_id = "msg_été_✓"
    headers = pipeline_headers(raw, webhook_id)
    # gunicorn, as PEP 3333 says, hands header bytes over decoded as Latin-1.
    as_received = webhook_id.encode().decode("latin-1")
    headers["webhook-id"] = "placeholder"

    response = client.open(signed_environ(client, raw, headers, HTTP_WEBHOOK_ID=as_received))
    again = client.open(signed_environ(client, raw, headers, HTTP_WEBHOOK_ID=as_received))

    assert response.status_code == 202
    assert again.json == {"status": "duplicate", "event_id": response.json["event_id"]}
    assert inbox.get_delivery(response.json["event_id"]).dedupe_key == f"webhook:{webhook_id}"


@pytest.mark.parametrize("age", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_a_timestamp_outside_five_minutes_is_refused(client, age):
    response = post_pipeline(client, fixture("pipeline", "run_launched__basic"), when=datetime.now(UTC) - age)

    assert response.status_code == 401
    assert response.json["error"] == "timestamp_out_of_tolerance"


def test_missing_signature_headers_are_refused(client):
    response = client.post("/webhooks/pipeline", data=fixture("pipeline", "run_launched__basic"))

    assert response.status_code == 401
    assert "error" in response.json and "message" in response.json


def test_an_unconfigured_secret_refuses_every_request(settings, sns_signer):
    from ingest import create_app

    client = create_app(settings.model_copy(update={"pipeline_webhook_secret": None})).test_client()

    response = post_pipeline(client, fixture("pipeline", "run_launched__basic"))

    assert response.status_code == 401
    assert response.json["error"] == "not_configured"


def test_malformed_json_is_kept_as_invalid_and_answered_400(client):
    response = post_pipeline(client, b'{"type": "run.launched", "data": ')

    assert response.status_code == 400
    assert response.json["error"] == "malformed_json"
    delivery = inbox.get_delivery(response.json["event_id"])
    assert delivery.status == "invalid"
    assert delivery.body == b'{"type": "run.launched", "data": '


def test_a_schema_violation_is_kept_as_invalid_and_answered_422_with_the_errors(client):
    response = post_pipeline(client, pipeline_event("run.launched", RUN_ID))

    assert response.status_code == 422
    assert response.json["error"] == "invalid_event"
    assert {"loc": ["run.launched", "data", "config"], "type": "missing"} in [
        {k: e[k] for k in ("loc", "type")} for e in response.json["details"]
    ]
    assert inbox.get_delivery(response.json["event_id"]).status == "invalid"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"type": "run.launched", "data": ', 400, "malformed_json"),
        (json.dumps(pipeline_event("run.launched", RUN_ID)).encode(), 422, "invalid_event"),
    ],
)
def test_a_refused_delivery_sent_again_is_refused_again_in_the_same_words(client, body, status, error):
    first = post_pipeline(client, body, webhook_id="msg_refused")
    again = post_pipeline(client, body, webhook_id="msg_refused")
    fixed = post_pipeline(client, fixture("pipeline", "run_launched__basic"), webhook_id="msg_refused")

    assert (first.status_code, first.json["error"]) == (status, error)
    assert (again.status_code, again.json) == (status, first.json)
    # The id names the delivery that was refused: a corrected body needs an id of its own.
    assert (fixed.status_code, fixed.json) == (status, first.json)
    assert len(inbox.list_deliveries()) == 1


def test_json_nested_to_the_limit_is_taken_and_deeper_is_refused_as_too_deep(client):
    from ingest.parsing import MAX_JSON_DEPTH

    def nested(levels: int) -> bytes:
        # The top-level object and its data object are two levels; the rest are arrays.
        deep = "[" * (levels - 2) + "]" * (levels - 2)
        return f'{{"type": "run.started", "timestamp": "2026-11-20T10:00:00Z", "data": {{"run_id": "r", "x": {deep}}}}}'.encode()

    deepest = post_pipeline(client, nested(MAX_JSON_DEPTH))
    deeper = post_pipeline(client, nested(MAX_JSON_DEPTH + 1))

    assert deepest.status_code == 202
    assert deeper.status_code == 400
    assert deeper.json["error"] == "nesting_too_deep"
    assert deeper.json["message"] == f"body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
    assert inbox.get_delivery(deeper.json["event_id"]).status == "invalid"


@pytest.mark.parametrize(
    "run_id", ["../../etc/passwd", "x'; DROP TABLE training_runs; --", "", "a" * 256, "a/b"]
)
def test_run_ids_that_are_not_plain_names_are_refused(client, run_id):
    response = post_pipeline(client, pipeline_event("run.started", run_id))

    assert response.status_code == 422
    assert store.get_run(run_id) is None if run_id else True


def test_an_unknown_event_type_is_refused_loudly(client):
    response = post_pipeline(client, pipeline_event("run.exploded", RUN_ID))

    assert response.status_code == 422
    assert "run.exploded" in json.dumps(response.json["details"]) or response.json["details"]


def test_a_body_over_the_limit_is_refused_with_413(client):
    response = post_pipeline(client, b"{" + b" " * (1024 * 1024 + 10) + b"}")

    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"


def test_extra_attributes_are_kept(client, worker):
    event = pipeline_event(
        "run.launched", RUN_ID, config={"seed": 1}, launched_by="ci", future_field={"a": 1}
    )
    event_id = post_pipeline(client, event).json["event_id"]
    worker.run_once()

    assert json.loads(inbox.get_delivery(event_id).body)["data"]["future_field"] == {"a": 1}
    assert store.get_run(RUN_ID)["seed"] == 1
