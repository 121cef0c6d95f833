"""POST /webhooks/s3: crash-report notifications as SNS envelopes, EventBridge events and bare S3 events."""

from __future__ import annotations

import json

import pytest

import store
from store import inbox
from tests.conftest import TOPIC_ARN
from tests.webhooks import fixture, fixture_json, post_s3, post_sns, sns_notification

RUN_ID = "run-000-0000042"


def test_a_bare_s3_event_attaches_the_crash_report_to_its_run(client, worker):
    response = post_s3(client, fixture("s3", "object_created__put"))
    worker.run_once()

    assert response.status_code == 202
    assert store.get_run(RUN_ID)["crash_analysis_s3_key"] == "crash-reports/run-000-0000042/analysis.md"


def test_a_crash_report_of_a_run_never_launched_makes_it_unknown_until_the_launch(client, worker):
    from tests.webhooks import post_pipeline

    post_s3(client, fixture("s3", "object_created__put"))
    worker.run_once()
    before, counted_before = store.get_run(RUN_ID), store.get_stats()["total_runs"]
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    worker.run_once()
    after = store.get_run(RUN_ID)

    assert (before["status"], before["gradient_method"]) == ("unknown", None)
    assert counted_before == 0
    assert after["status"] == "launched"
    assert after["gradient_method"] is not None
    assert after["crash_analysis_s3_key"] == "crash-reports/run-000-0000042/analysis.md"
    assert store.get_stats()["runs_by_status"] == {"launched": 1}


def test_an_eventbridge_event_attaches_the_error_log(client, worker):
    response = post_s3(client, fixture("s3", "eventbridge__object_created"))
    worker.run_once()

    assert response.status_code == 202
    assert store.get_run(RUN_ID)["error_log_s3_key"] == "crash-reports/run-000-0000042/error.log"


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_sns_notification_attaches_the_crash_report(client, worker, sns_signer, version):
    envelope = sns_notification(sns_signer, fixture("s3", "object_created__put"), version=version)

    response = post_sns(client, envelope)
    worker.run_once()

    assert response.status_code == 202
    assert inbox.get_delivery(response.json["event_id"]).headers["content-type"].startswith("text/plain")
    assert store.get_run(RUN_ID)["crash_analysis_s3_key"] == "crash-reports/run-000-0000042/analysis.md"


def test_an_sns_notification_with_a_subject_verifies(client, sns_signer):
    envelope = sns_notification(
        sns_signer, fixture("s3", "object_created__put"), subject="Amazon S3 Notification"
    )

    assert post_sns(client, envelope).status_code == 202


def test_encoded_keys_are_decoded_before_matching(client, worker):
    post_s3(client, fixture("s3", "object_created__multipart_encoded_key"))
    worker.run_once()

    assert (
        store.get_run("run-000-0000042+replay")["crash_report_s3_key"]
        == "crash-reports/run-000-0000042+replay/report.md"
    )


@pytest.mark.parametrize(
    "name",
    ["object_created__other_prefix", "object_removed__delete", "test_event", "eventbridge__object_deleted"],
)
def test_other_keys_removals_and_test_events_are_acknowledged_and_recorded_as_ignored(client, worker, name):
    response = post_s3(client, fixture("s3", name))
    worker.run_once()

    assert response.status_code == 202
    assert inbox.get_delivery(response.json["event_id"]).status == "ignored"
    assert store.query_runs() == []


def test_an_older_sequencer_for_the_same_key_changes_nothing(client, worker):
    newer = fixture_json("s3", "object_created__put")
    older = json.loads(json.dumps(newer))
    older["Records"][0]["s3"]["object"]["sequencer"] = "0055AED6DCD90281"
    older["Records"][0]["s3"]["object"]["eTag"] = "older"
    post_s3(client, newer)
    worker.run_once()
    post_s3(client, older)
    worker.run_once()

    assert store.get_run(RUN_ID)["crash_analysis_s3_key"] == "crash-reports/run-000-0000042/analysis.md"
    assert [d.status for d in inbox.list_deliveries()] == ["done", "done"]


def test_the_same_sns_message_id_twice_is_a_duplicate(client, sns_signer):
    envelope = sns_notification(sns_signer, fixture("s3", "object_created__put"), message_id="m-1")

    first, second = post_sns(client, envelope), post_sns(client, envelope)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json["status"] == "duplicate"


def test_the_same_bare_s3_records_twice_are_a_duplicate(client):
    first = post_s3(client, fixture("s3", "object_created__put"))
    second = post_s3(client, fixture("s3", "object_created__put"))

    assert second.json == {"status": "duplicate", "event_id": first.json["event_id"]}


def test_the_same_eventbridge_id_twice_is_a_duplicate(client):
    post_s3(client, fixture("s3", "eventbridge__object_created"))

    assert post_s3(client, fixture("s3", "eventbridge__object_created")).json["status"] == "duplicate"


def test_a_tampered_sns_message_is_refused_with_401(client, sns_signer):
    envelope = sns_notification(sns_signer, fixture("s3", "object_created__put"))
    envelope["Message"] = envelope["Message"].replace("analysis.md", "report.md")

    response = post_sns(client, envelope)

    assert response.status_code == 401
    assert response.json["error"] == "bad_signature"
    assert inbox.list_deliveries() == []


def test_an_sns_message_from_another_topic_is_refused_with_403(client, sns_signer):
    envelope = sns_notification(
        sns_signer, fixture("s3", "object_created__put"), topic_arn="arn:aws:sns:us-east-1:999999999999:other"
    )

    response = post_sns(client, envelope)

    assert response.status_code == 403
    assert response.json["error"] == "topic_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem",
        "https://evil.com@sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt",
        "https://s3.amazonaws.com/bucket/cert.pem",
    ],
)
def test_a_certificate_url_outside_sns_is_refused_before_any_fetch(client, sns_signer, url):
    envelope = sns_notification(sns_signer, fixture("s3", "object_created__put"))
    envelope["SigningCertURL"] = url

    response = post_sns(client, envelope)

    assert response.status_code == 401
    assert response.json["error"] == "bad_certificate_url"


def test_a_subscription_confirmation_is_confirmed_by_the_worker_after_verification(
    client, settings, sns_signer
):
    from ingest.worker import Worker, make_context

    visited = []
    envelope = sns_signer.subscription_confirmation(TOPIC_ARN)
    response = post_sns(client, envelope)

    Worker(settings, make_context(settings, http_get=lambda url: visited.append(url) or _Ok())).run_once()

    assert response.status_code == 202
    assert visited == [envelope["SubscribeURL"]]
    assert inbox.get_delivery(response.json["event_id"]).status == "done"


def test_an_unsubscribe_confirmation_is_acknowledged_and_not_followed(client, sns_signer):
    response = post_sns(client, sns_signer.unsubscribe_confirmation(TOPIC_ARN))

    assert response.status_code == 202
    assert inbox.get_delivery(response.json["event_id"]).status == "ignored"


def test_a_verified_sns_message_that_is_not_an_s3_event_is_kept_as_invalid_with_202(client, sns_signer):
    envelope = sns_notification(sns_signer, {"hello": "world"})

    response = post_sns(client, envelope)

    assert response.status_code == 202
    assert response.json["status"] == "invalid"
    assert inbox.get_delivery(response.json["event_id"]).status == "invalid"


def test_a_bearer_event_that_fails_validation_is_kept_as_invalid_with_202(client):
    response = post_s3(client, {"Records": [{"eventName": "ObjectCreated:Put"}]})

    assert response.status_code == 202
    assert response.json["status"] == "invalid"
    assert "errors" in response.json


def test_a_wrong_bearer_token_is_refused(client):
    response = post_s3(client, fixture("s3", "object_created__put"), token="wrong")

    assert response.status_code == 401
    assert inbox.list_deliveries() == []


def test_an_unsigned_event_without_a_token_is_refused(client):
    response = post_s3(client, fixture("s3", "object_created__put"), token=None)

    assert response.status_code == 401
    assert response.json["error"] == "missing_credentials"


def test_malformed_json_with_a_token_is_kept_and_answered_400(client):
    response = post_s3(client, b'{"Records": [')

    assert response.status_code == 400
    assert inbox.get_delivery(response.json["event_id"]).status == "invalid"


class _Ok:
    status_code = 200
    ok = True
    text = "<ConfirmSubscriptionResponse/>"

    def raise_for_status(self) -> None:
        return None


def test_a_notification_with_values_no_column_holds_is_applied_with_warnings(client, worker):
    def record(key: str, size: int, sequencer: str) -> dict:
        obj = {"key": key, "size": size, "eTag": "e1", "sequencer": sequencer}
        return {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": obj}}

    body = {
        "Records": [
            record("crash-reports/r1/error.log", 2**64, "0" * 100),
            record(f"crash-reports/{'r' * 1100}/report.md", 1, "0A"),
        ]
    }
    event_id = post_s3(client, body).json["event_id"]

    worker.run_once()

    delivery = inbox.get_delivery(event_id)
    assert delivery.status == "done", delivery.last_error
    assert delivery.warnings == [
        "s3 object sequencer: a string of 100 characters is longer than 64; left empty",
        "s3 object size: 18446744073709551616 is out of range for a 64-bit integer; left empty",
        "s3 object key: a string of 1124 characters is too long; the notification is left out",
    ]
    assert store.get_run("r1")["error_log_s3_key"] == "crash-reports/r1/error.log"
