"""Authentication of every webhook source, one failure mode per test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws
from standardwebhooks import Webhook
from werkzeug.datastructures import Headers

from ingest.auth import (
    AuthError,
    ConfirmationFailed,
    SnsVerifier,
    TopicNotAllowed,
    check_certificate_url,
    confirm_subscription,
    verify_bearer,
    verify_pipeline,
    verify_wandb,
)
from tests.sns_signer import SnsSigner

NOW = 1_700_000_000
SECRET = "whsec_" + base64.b64encode(b"pipeline-secret-of-24-by").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"retired-secret-of-24-byt").decode()
BODY = b'{"type": "run.finished", "run_id": "r-42"}'
TOPIC = "arn:aws:sns:us-east-1:123456789012:training-db"


def assert_refused(reason: str, call: Callable[[], object]) -> None:
    with pytest.raises(AuthError) as refused:
        call()
    assert refused.value.reason == reason


# Pipeline: Standard Webhooks, signed by the standardwebhooks library as an independent oracle.


def pipeline_headers(
    body: bytes = BODY, secret: str = SECRET, msg_id: str = "msg_1", timestamp: int = NOW
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_a_signed_pipeline_delivery_verifies_and_returns_its_webhook_id() -> None:
    assert verify_pipeline(SECRET, BODY, pipeline_headers(), now=NOW) == "msg_1"


def test_pipeline_headers_are_found_in_any_case() -> None:
    shouted = {name.upper(): value for name, value in pipeline_headers().items()}
    assert verify_pipeline(SECRET, BODY, shouted, now=NOW) == "msg_1"
    assert verify_pipeline(SECRET, BODY, Headers(pipeline_headers()), now=NOW) == "msg_1"


def test_a_pipeline_signature_made_with_another_secret_is_refused() -> None:
    headers = pipeline_headers(secret=OLD_SECRET)
    assert_refused("bad_signature", lambda: verify_pipeline(SECRET, BODY, headers, now=NOW))


def test_a_pipeline_body_changed_after_signing_is_refused() -> None:
    headers = pipeline_headers()
    assert_refused("bad_signature", lambda: verify_pipeline(SECRET, BODY + b" ", headers, now=NOW))


def test_a_rotated_secret_passes_when_any_one_of_several_signatures_matches() -> None:
    old = pipeline_headers(secret=OLD_SECRET)["webhook-signature"]
    headers = pipeline_headers()
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert verify_pipeline(SECRET, BODY, headers, now=NOW) == "msg_1"


@pytest.mark.parametrize("signature", ["garbage", "v1", "v1,", "v2,AAAA", "v1,not base64!", "v1,é"])
def test_a_malformed_pipeline_signature_is_refused_without_crashing(signature: str) -> None:
    headers = {**pipeline_headers(), "webhook-signature": signature}
    assert_refused("bad_signature", lambda: verify_pipeline(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_pipeline_timestamp_outside_the_tolerance_either_way_is_refused(offset: int) -> None:
    headers = pipeline_headers(timestamp=NOW + offset)
    assert_refused("timestamp_out_of_tolerance", lambda: verify_pipeline(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize("offset", [-300, 300])
def test_a_pipeline_timestamp_at_the_edge_of_the_tolerance_passes(offset: int) -> None:
    assert verify_pipeline(SECRET, BODY, pipeline_headers(timestamp=NOW + offset), now=NOW) == "msg_1"


@pytest.mark.parametrize("timestamp", ["", "1.7e9", "-1700000000", "１７００００００００", "9" * 5000])
def test_a_pipeline_timestamp_that_is_not_whole_unix_seconds_is_refused(timestamp: str) -> None:
    headers = {**pipeline_headers(), "webhook-timestamp": timestamp}
    reason = "missing_signature" if not timestamp else "bad_timestamp"
    assert_refused(reason, lambda: verify_pipeline(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_pipeline_delivery_missing_a_header_is_refused(missing: str) -> None:
    headers = pipeline_headers()
    del headers[missing]
    assert_refused("missing_signature", lambda: verify_pipeline(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize("secret", [None, "", "whsec_"])
def test_pipeline_deliveries_are_refused_when_no_secret_is_configured(secret: str | None) -> None:
    assert_refused("not_configured", lambda: verify_pipeline(secret, BODY, pipeline_headers(), now=NOW))


def test_a_signed_pipeline_body_that_is_not_json_still_verifies() -> None:
    body = b"this is { not json"
    assert verify_pipeline(SECRET, body, pipeline_headers(body), now=NOW) == "msg_1"


def test_a_signed_pipeline_body_that_is_not_utf8_still_verifies() -> None:
    body = b"\xff\xfe\x00binary"
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_1.{NOW}.".encode() + body, hashlib.sha256).digest()
    headers = {**pipeline_headers(), "webhook-signature": "v1," + base64.b64encode(digest).decode()}
    assert verify_pipeline(SECRET, body, headers, now=NOW) == "msg_1"


# Bearer tokens.


@pytest.mark.parametrize("authorization", ["Bearer s3cret", "bearer s3cret"])
def test_the_configured_bearer_token_is_accepted(authorization: str) -> None:
    verify_bearer("s3cret", {"Authorization": authorization})


def test_a_wrong_bearer_token_is_refused() -> None:
    assert_refused("bad_token", lambda: verify_bearer("s3cret", {"Authorization": "Bearer s3cre7"}))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic czNjcmV0"}, {"Authorization": "Bearer "}])
def test_a_request_without_a_bearer_token_is_refused(headers: dict[str, str]) -> None:
    assert_refused("missing_token", lambda: verify_bearer("s3cret", headers))


@pytest.mark.parametrize("expected", [None, ""])
def test_bearer_tokens_are_refused_when_none_is_configured(expected: str | None) -> None:
    assert_refused("not_configured", lambda: verify_bearer(expected, {"Authorization": "Bearer "}))


# W&B: bearer token and/or X-Wandb-Signature.

WANDB_DIGEST = hmac.new(b"wandb-secret", BODY, hashlib.sha256).digest()
WANDB_BASE64 = base64.b64encode(WANDB_DIGEST).decode()


def test_a_wandb_delivery_with_only_a_token_configured_needs_only_the_token() -> None:
    verify_wandb("tok", None, BODY, {"Authorization": "Bearer tok"})


def test_a_wandb_delivery_with_a_wrong_token_is_refused() -> None:
    assert_refused("bad_token", lambda: verify_wandb("tok", None, BODY, {"Authorization": "Bearer nope"}))


@pytest.mark.parametrize(
    "signature",
    [
        WANDB_BASE64,
        WANDB_DIGEST.hex(),
        WANDB_DIGEST.hex().upper(),
        "sha256=" + WANDB_DIGEST.hex(),
        "sha256=" + WANDB_BASE64,
    ],
    ids=["base64", "hex", "upper-hex", "prefixed-hex", "prefixed-base64"],
)
def test_a_wandb_signature_is_accepted_in_each_encoding_seen_in_the_wild(signature: str) -> None:
    verify_wandb(None, "wandb-secret", BODY, {"X-Wandb-Signature": signature})


def test_a_wandb_delivery_without_a_signature_is_refused_when_a_secret_is_configured() -> None:
    assert_refused("missing_signature", lambda: verify_wandb(None, "wandb-secret", BODY, {}))


def test_a_wandb_body_changed_after_signing_is_refused() -> None:
    headers = {"X-Wandb-Signature": WANDB_BASE64}
    assert_refused("bad_signature", lambda: verify_wandb(None, "wandb-secret", BODY + b" ", headers))


def test_a_wandb_delivery_with_both_configured_passes_with_both_right() -> None:
    verify_wandb(
        "tok", "wandb-secret", BODY, {"Authorization": "Bearer tok", "X-Wandb-Signature": WANDB_BASE64}
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authorization": "Bearer nope", "X-Wandb-Signature": WANDB_BASE64}, "bad_token"),
        (
            {"Authorization": "Bearer tok", "X-Wandb-Signature": base64.b64encode(b"x" * 32).decode()},
            "bad_signature",
        ),
        ({"X-Wandb-Signature": WANDB_BASE64}, "missing_token"),
        ({"Authorization": "Bearer tok"}, "missing_signature"),
    ],
    ids=["wrong-token", "wrong-signature", "no-token", "no-signature"],
)
def test_a_wandb_delivery_with_both_configured_is_refused_when_either_is_wrong(
    headers: dict[str, str], reason: str
) -> None:
    assert_refused(reason, lambda: verify_wandb("tok", "wandb-secret", BODY, headers))


def test_wandb_deliveries_are_refused_when_neither_token_nor_secret_is_configured() -> None:
    assert_refused("not_configured", lambda: verify_wandb("", None, BODY, {"Authorization": "Bearer "}))


# SNS.


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


class CountingFetch:
    """Serve the signer's certificate and count the fetches."""

    def __init__(self, signer: SnsSigner) -> None:
        self.signer = signer
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.signer.fetch_pem(url)


@pytest.fixture
def fetch(signer: SnsSigner) -> CountingFetch:
    return CountingFetch(signer)


@pytest.fixture
def verifier(fetch: CountingFetch) -> SnsVerifier:
    return SnsVerifier([TOPIC], fetch_pem=fetch)


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_sns_notification_verifies_with_either_signature_version(
    signer: SnsSigner, verifier: SnsVerifier, version: str
) -> None:
    verifier.verify(signer.notification('{"Records": [], "note": "loss ↓\\n"}', TOPIC, version=version))


@pytest.mark.parametrize("subject", [None, "Run finished ✓"])
def test_a_signed_sns_notification_verifies_with_and_without_a_subject(
    signer: SnsSigner, verifier: SnsVerifier, subject: str | None
) -> None:
    verifier.verify(signer.notification("hello", TOPIC, subject=subject))


@pytest.mark.parametrize("kind", ["subscription_confirmation", "unsubscribe_confirmation"])
def test_a_signed_sns_confirmation_verifies(signer: SnsSigner, verifier: SnsVerifier, kind: str) -> None:
    verifier.verify(getattr(signer, kind)(TOPIC))


def test_an_sns_message_changed_after_signing_is_refused(signer: SnsSigner, verifier: SnsVerifier) -> None:
    message = {**signer.notification("hello", TOPIC), "Message": "hellO"}
    assert_refused("bad_signature", lambda: verifier.verify(message))


def test_an_sns_subject_added_after_signing_is_refused(signer: SnsSigner, verifier: SnsVerifier) -> None:
    message = {**signer.notification("hello", TOPIC), "Subject": "injected"}
    assert_refused("bad_signature", lambda: verifier.verify(message))


def test_an_sns_subject_removed_after_signing_is_refused(signer: SnsSigner, verifier: SnsVerifier) -> None:
    message = signer.notification("hello", TOPIC, subject="signed")
    del message["Subject"]
    assert_refused("bad_signature", lambda: verifier.verify(message))


def test_an_sns_sha256_signature_relabelled_as_version_1_is_refused(
    signer: SnsSigner, verifier: SnsVerifier
) -> None:
    message = {**signer.notification("hello", TOPIC, version="2"), "SignatureVersion": "1"}
    assert_refused("bad_signature", lambda: verifier.verify(message))


def test_an_unknown_sns_signature_version_is_refused(signer: SnsSigner, verifier: SnsVerifier) -> None:
    message = {**signer.notification("hello", TOPIC), "SignatureVersion": "3"}
    assert_refused("unsupported_signature_version", lambda: verifier.verify(message))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageId", None),
        ("Timestamp", 1700000000),
        ("Type", "Bogus"),
        ("Type", ["Notification"]),
        ("Signature", None),
        ("Signature", "not base64!"),
        ("TopicArn", None),
    ],
)
def test_an_sns_message_with_a_missing_or_mistyped_field_is_refused(
    signer: SnsSigner, verifier: SnsVerifier, field: str, value: Any
) -> None:
    message = signer.notification("hello", TOPIC)
    if value is None:
        del message[field]
    else:
        message[field] = value
    with pytest.raises(AuthError):
        verifier.verify(message)


BAD_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-test.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.txt",
    "https://sns.us-east-1.amazonaws.com/?x=SimpleNotificationService-test.pem",
    "https://s3.us-east-1.amazonaws.com/bucket/SimpleNotificationService-test.pem",
    "https://sns.amazonaws.com.cn.evil.com/SimpleNotificationService-test.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://[::1/SimpleNotificationService-test.pem",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_an_sns_certificate_url_off_an_sns_https_host_is_refused_before_fetching(
    signer: SnsSigner, verifier: SnsVerifier, fetch: CountingFetch, url: str
) -> None:
    assert_refused("bad_certificate_url", lambda: check_certificate_url(url))
    message = {**signer.notification("hello", TOPIC), "SigningCertURL": url}
    assert_refused("bad_certificate_url", lambda: verifier.verify(message))
    assert fetch.urls == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://SNS.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    ],
)
def test_real_sns_certificate_urls_are_accepted(url: str) -> None:
    check_certificate_url(url)


def test_an_authentic_sns_message_from_another_topic_is_not_allowed(
    signer: SnsSigner, verifier: SnsVerifier
) -> None:
    other = "arn:aws:sns:us-east-1:123456789012:someone-else"
    with pytest.raises(TopicNotAllowed) as refused:
        verifier.verify(signer.notification("hello", other))
    assert refused.value.topic_arn == other


def test_an_empty_topic_allow_list_allows_no_topic(signer: SnsSigner) -> None:
    with pytest.raises(TopicNotAllowed):
        SnsVerifier([], fetch_pem=signer.fetch_pem).verify(signer.notification("hello", TOPIC))


def test_a_forged_sns_message_from_another_topic_is_unauthenticated_not_forbidden(
    signer: SnsSigner, verifier: SnsVerifier
) -> None:
    message = {**signer.notification("hello", TOPIC), "TopicArn": "arn:aws:sns:us-east-1:123456789012:other"}
    assert_refused("bad_signature", lambda: verifier.verify(message))


def test_an_sns_signing_certificate_is_fetched_once_for_many_messages(
    signer: SnsSigner, verifier: SnsVerifier, fetch: CountingFetch
) -> None:
    verifier.verify(signer.notification("one", TOPIC))
    verifier.verify(signer.notification("two", TOPIC, version="1"))
    assert fetch.urls == [signer.cert_url]


def test_an_sns_certificate_that_cannot_be_fetched_refuses_the_message(signer: SnsSigner) -> None:
    def unreachable(url: str) -> bytes:
        raise requests.ConnectionError(f"cannot reach {url}")

    verifier = SnsVerifier([TOPIC], fetch_pem=unreachable)
    assert_refused("certificate_unavailable", lambda: verifier.verify(signer.notification("hello", TOPIC)))


def test_an_sns_certificate_url_serving_no_certificate_refuses_the_message(signer: SnsSigner) -> None:
    verifier = SnsVerifier([TOPIC], fetch_pem=lambda url: b"<html>not a certificate</html>")
    assert_refused("certificate_unavailable", lambda: verifier.verify(signer.notification("hello", TOPIC)))


def test_a_notification_signed_by_moto_verifies_with_the_default_certificate_fetcher() -> None:
    # moto signs with its own key and serves the certificate to requests.get, an independent signer.
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="training-db")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="sns-envelopes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        sns.publish(TopicArn=topic, Message=json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}))
        envelope = json.loads(sqs.receive_message(QueueUrl=queue_url)["Messages"][0]["Body"])
        SnsVerifier([topic]).verify(envelope)


# Subscription confirmation.


class RecordingGet:
    """Answer GETs with a fixed status and remember the URLs."""

    def __init__(self, status_code: int = 200) -> None:
        self.status_code = status_code
        self.urls: list[str] = []

    def __call__(self, url: str) -> SimpleNamespace:
        self.urls.append(url)
        return SimpleNamespace(status_code=self.status_code)


def test_a_subscription_is_confirmed_by_getting_its_subscribe_url(signer: SnsSigner) -> None:
    message = signer.subscription_confirmation(TOPIC)
    http_get = RecordingGet()
    confirm_subscription(message, http_get=http_get)
    assert http_get.urls == [message["SubscribeURL"]]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    ],
)
def test_a_subscribe_url_off_an_sns_https_host_is_never_fetched(signer: SnsSigner, url: str) -> None:
    http_get = RecordingGet()
    message = signer.subscription_confirmation(TOPIC, subscribe_url=url)
    assert_refused("bad_subscribe_url", lambda: confirm_subscription(message, http_get=http_get))
    assert http_get.urls == []


def test_a_subscription_confirmation_answered_with_an_error_status_fails(signer: SnsSigner) -> None:
    with pytest.raises(ConfirmationFailed, match="403"):
        confirm_subscription(signer.subscription_confirmation(TOPIC), http_get=RecordingGet(403))


def test_a_subscription_confirmation_that_cannot_connect_fails(signer: SnsSigner) -> None:
    def unreachable(url: str) -> SimpleNamespace:
        raise requests.ConnectionError(f"cannot reach {url}")

    with pytest.raises(ConfirmationFailed):
        confirm_subscription(signer.subscription_confirmation(TOPIC), http_get=unreachable)
