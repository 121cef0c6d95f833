"""A corpus of bad deliveries through the real app: each gets its documented status, none a 500.

Documented statuses: 400 malformed JSON, 401 authentication, 403 SNS topic, 413 over
MAX_BODY_BYTES, 422 schema (pipeline, W&B), 202 kept as invalid (S3, SNS), 200 duplicate.
A delivery within the size limit that passed authentication is kept whatever it holds:
every answer naming an event_id must find the delivery in the inbox, byte for byte.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from store import inbox
from tests.conftest import S3_TOKEN, TOPIC_ARN, WANDB_SECRET, WANDB_TOKEN
from tests.sns_signer import SnsSigner
from tests.webhooks import (
    fixture,
    pipeline_event,
    pipeline_headers,
    post_s3,
    post_sns,
    post_wandb,
    sns_notification,
)

LAUNCHED = json.dumps(pipeline_event("run.launched", "run-1", config={"lr": 0.001})).encode()


@dataclass(frozen=True)
class Sent:
    """What a case posted and what came back."""

    body: bytes
    response: TestResponse


def pipeline(body: bytes, webhook_id: str | None = None, **headers: str) -> Callable[..., Sent]:
    """Post ``body`` signed as the pipeline signs, with ``headers`` overriding the signed ones."""

    def post(client: FlaskClient, _: SnsSigner) -> Sent:
        signed = {**pipeline_headers(body, webhook_id or f"msg_{uuid.uuid4().hex}"), **headers}
        return Sent(body, client.post("/webhooks/pipeline", data=body, headers=signed))

    return post


def launched(**data: Any) -> bytes:
    """Return a run.launched event whose data fields are replaced by ``data``."""
    event = pipeline_event("run.launched", "run-1", config={})
    event["data"].update(data)
    return json.dumps(event).encode()


def nested(depth: int) -> bytes:
    return (
        b'{"type": "run.launched", "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": "r", "config": {"a": '
        + (b"[" * depth + b"]" * depth)
        + b"}}}"
    )


def padded(over: int) -> Callable[..., Sent]:
    """Post a valid event padded with whitespace to ``over`` bytes more than MAX_BODY_BYTES."""

    def post(client: FlaskClient, signer: SnsSigner) -> Sent:
        size = client.application.config["MAX_CONTENT_LENGTH"] + over
        return pipeline(LAUNCHED + b" " * (size - len(LAUNCHED)))(client, signer)

    return post


def forged(client: FlaskClient, _: SnsSigner) -> Sent:
    headers = pipeline_headers(LAUNCHED, "msg_forged", secret="whsec_" + "A" * 32)
    return Sent(LAUNCHED, client.post("/webhooks/pipeline", data=LAUNCHED, headers=headers))


def signed_for_another_body(client: FlaskClient, _: SnsSigner) -> Sent:
    headers = pipeline_headers(launched(run_name="other"), "msg_swapped")
    return Sent(LAUNCHED, client.post("/webhooks/pipeline", data=LAUNCHED, headers=headers))


def replayed_after_tolerance(client: FlaskClient, _: SnsSigner) -> Sent:
    old = datetime.now(UTC) - timedelta(minutes=6)
    headers = pipeline_headers(LAUNCHED, "msg_old", when=old)
    return Sent(LAUNCHED, client.post("/webhooks/pipeline", data=LAUNCHED, headers=headers))


def replayed_within_tolerance(client: FlaskClient, _: SnsSigner) -> Sent:
    headers = pipeline_headers(LAUNCHED, "msg_replayed")
    first = client.post("/webhooks/pipeline", data=LAUNCHED, headers=headers)
    assert first.status_code == 202
    return Sent(LAUNCHED, client.post("/webhooks/pipeline", data=LAUNCHED, headers=headers))


def wandb(
    body: bytes, token: str | None = WANDB_TOKEN, secret: str | None = WANDB_SECRET
) -> Callable[..., Sent]:
    def post(client: FlaskClient, _: SnsSigner) -> Sent:
        return Sent(body, post_wandb(client, body, token=token, secret=secret))

    return post


def s3(body: bytes, token: str | None = S3_TOKEN) -> Callable[..., Sent]:
    def post(client: FlaskClient, _: SnsSigner) -> Sent:
        return Sent(body, post_s3(client, body, token=token))

    return post


def sns(message: bytes | str, **options: Any) -> Callable[..., Sent]:
    def post(client: FlaskClient, signer: SnsSigner) -> Sent:
        envelope = sns_notification(
            signer, message if isinstance(message, bytes) else message.encode(), **options
        )
        return Sent(json.dumps(envelope).encode(), post_sns(client, envelope))

    return post


def sns_forged(client: FlaskClient, signer: SnsSigner) -> Sent:
    envelope = sns_notification(signer, fixture("s3", "object_created__put"))
    envelope["Message"] = envelope["Message"].replace("crash-reports", "elsewhere")
    return Sent(json.dumps(envelope).encode(), post_sns(client, envelope))


EVENTBRIDGE = json.loads(fixture("s3", "eventbridge__object_created"))
WANDB = {"event_type": "RUN_STATE", "event_author": "me", "entity_name": "mango-lab", "project_name": "moo"}

# id -> (how to send it, the status it must get)
CORPUS: dict[str, tuple[Callable[..., Sent], int]] = {
    "malformed json": (pipeline(b'{"type": "run.launched", "data": {'), 400),
    "truncated json": (pipeline(LAUNCHED[: len(LAUNCHED) // 2]), 400),
    "empty body": (pipeline(b""), 400),
    "byte order mark": (pipeline(b"\xef\xbb\xbf" + LAUNCHED), 400),
    "invalid utf-8 in a string": (pipeline(LAUNCHED.replace(b"0.001", b'"\xff\xfe\xc0"')), 400),
    "invalid utf-8 outside strings": (pipeline(b"\xff" + LAUNCHED), 400),
    "10,000 nested arrays": (pipeline(nested(10_000)), 400),
    "10,000 nested objects": (
        pipeline(
            launched().replace(b'"config": {}', b'"config": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000)
        ),
        400,
    ),
    "a JSON array": (pipeline(b"[" + LAUNCHED + b"]"), 422),
    "a JSON string": (pipeline(b'"run.launched"'), 422),
    "unknown event type": (pipeline(LAUNCHED.replace(b"run.launched", b"run.exploded")), 422),
    "missing data": (pipeline(b'{"type": "run.launched", "timestamp": "2026-11-20T10:00:00Z"}'), 422),
    "missing run_id": (pipeline(LAUNCHED.replace(b'"run_id": "run-1", ', b"")), 422),
    "missing timestamp": (pipeline(b'{"type": "run.started", "data": {"run_id": "run-1"}}'), 422),
    "timestamp without a time zone": (pipeline(LAUNCHED.replace(b"10:00:00Z", b"10:00:00")), 422),
    "timestamp in Unix seconds": (pipeline(LAUNCHED.replace(b'"2026-11-20T10:00:00Z"', b"1795997321")), 422),
    "timestamp a string of digits": (pipeline(LAUNCHED.replace(b'"2026-11-20T10:00:00Z"', b'"0"')), 422),
    "run_id a number": (pipeline(launched(run_id=42)), 422),
    "config a list": (pipeline(launched(config=[1, 2])), 422),
    "step a string": (pipeline(json.dumps(pipeline_event("run.progress", "r", step="ten")).encode()), 422),
    "step negative": (pipeline(json.dumps(pipeline_event("run.progress", "r", step=-1)).encode()), 422),
    "step NaN": (
        pipeline(
            b'{"type": "run.progress", "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": "r", "step": NaN}}'
        ),
        422,
    ),  # noqa: E501
    "NaN and Infinity in a summary": (
        pipeline(
            b'{"type": "run.finished", "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": "r", '
            b'"summary": {"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}}}'
        ),
        202,
    ),  # fmt: skip
    "NUL in a string": (pipeline(launched(run_name="a\x00b")), 422),
    "NUL in a key": (pipeline(launched(config={"a\x00": 1})), 422),
    "SQL-like run_id": (pipeline(launched(run_id="r'; DROP TABLE training_runs; --")), 422),
    "path-like run_id": (pipeline(launched(run_id="../../etc/passwd")), 422),
    "run_id with a newline": (pipeline(launched(run_id="run-1\nrun-2")), 422),
    "run_id of 300 characters": (pipeline(launched(run_id="r" * 300)), 422),
    "SQL-like webhook-id": (pipeline(LAUNCHED, webhook_id="x'); DROP TABLE inbox_events; --"), 202),
    "webhook-id of 1,000 characters": (pipeline(LAUNCHED, webhook_id="m" * 1000), 202),
    "huge string in the config": (pipeline(launched(config={"notes": "x" * 900_000})), 202),
    "run_name over 4096 characters": (pipeline(launched(run_name="n" * 5000)), 422),
    "body of exactly MAX_BODY_BYTES": (padded(0), 202),
    "body one byte over MAX_BODY_BYTES": (padded(1), 413),
    "10 MB body": (pipeline(launched(config={"notes": "x" * 10_000_000})), 413),
    "text/plain": (pipeline(LAUNCHED, **{"Content-Type": "text/plain"}), 202),
    "form-encoded content type": (
        pipeline(LAUNCHED, **{"Content-Type": "application/x-www-form-urlencoded"}),
        202,
    ),
    "multipart content type": (
        pipeline(LAUNCHED, **{"Content-Type": "multipart/form-data; boundary=x"}),
        202,
    ),
    "forged signature": (forged, 401),
    "signature of another body": (signed_for_another_body, 401),
    "signature not base64": (pipeline(LAUNCHED, **{"webhook-signature": "v1,!!!not-base64!!!"}), 401),
    "no signature": (pipeline(LAUNCHED, **{"webhook-signature": ""}), 401),
    "timestamp not a number": (pipeline(LAUNCHED, **{"webhook-timestamp": "yesterday"}), 401),
    "timestamp of 400 digits": (pipeline(LAUNCHED, **{"webhook-timestamp": "9" * 400}), 401),
    "replayed after the tolerance": (replayed_after_tolerance, 401),
    "replayed within the tolerance": (replayed_within_tolerance, 200),
    "W&B malformed json": (wandb(b'{"event_type": '), 400),
    "W&B wrong types": (wandb(json.dumps({**WANDB, "entity_name": 7}).encode()), 422),
    "W&B missing project": (wandb(json.dumps({**WANDB, "project_name": None}).encode()), 422),
    "W&B wrong token": (wandb(json.dumps(WANDB).encode(), token="guess"), 401),
    "W&B forged signature": (wandb(json.dumps(WANDB).encode(), secret="guess"), 401),
    "S3 malformed json": (s3(b'{"Records": ['), 400),
    "S3 without credentials": (s3(json.dumps(EVENTBRIDGE).encode(), token=None), 401),
    "S3 wrong token": (s3(json.dumps(EVENTBRIDGE).encode(), token="guess"), 401),
    "EventBridge event missing its detail": (s3(json.dumps({**EVENTBRIDGE, "detail": None}).encode()), 202),
    "EventBridge id with a NUL": (s3(json.dumps({**EVENTBRIDGE, "id": "a\u0000b"}).encode()), 202),
    "EventBridge id with a lone surrogate, not valid JSON": (
        s3(json.dumps({**EVENTBRIDGE, "id": "a\ud800b"}).encode()),
        400,
    ),
    "S3 records of wrong types": (s3(b'{"Records": [{"eventName": 1, "s3": []}]}'), 202),
    "S3 something else entirely": (s3(b'{"hello": "world"}'), 202),
    "SNS message that is not JSON": (sns(b"not json at all"), 202),
    "SNS message that is not an S3 event": (sns(b'{"hello": "world"}'), 202),
    "SNS from a topic not allowed": (
        sns(fixture("s3", "object_created__put"), topic_arn=TOPIC_ARN + "-other"),
        403,
    ),
    "SNS forged signature": (sns_forged, 401),
}
KEPT_STATUSES = (200, 202, 400, 422)


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_input_gets_its_documented_status_and_what_is_kept_is_kept_whole(
    case: str, client: FlaskClient, sns_signer: SnsSigner
) -> None:
    send, status = CORPUS[case]
    before = inbox.counts()
    sent = send(client, sns_signer)
    assert sent.response.status_code == status, sent.response.get_data(as_text=True)[:500]
    answer = sent.response.get_json()
    assert isinstance(answer, dict) and answer, "every answer is a JSON object"
    if status in KEPT_STATUSES:
        delivery = inbox.get_delivery(answer["event_id"])
        assert delivery is not None and delivery.body == sent.body
    else:
        assert inbox.counts() == before, "a refused delivery is not stored"
    assert client.get("/healthz").status_code == 200
