"""One way to post deliveries through the real app, as each sender would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import PIPELINE_SECRET, S3_TOKEN, TOPIC_ARN, WANDB_SECRET, WANDB_TOKEN
from tests.sns_signer import SnsSigner

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(source: str, name: str) -> bytes:
    """Return the raw bytes of ``tests/fixtures/<source>/<name>.json``."""
    return (FIXTURES / source / f"{name}.json").read_bytes()


def fixture_json(source: str, name: str) -> dict[str, Any]:
    return json.loads(fixture(source, name))


def _bytes(body: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(body, dict):
        return json.dumps(body).encode()
    return body.encode() if isinstance(body, str) else body


def pipeline_event(
    event_type: str, run_id: str, timestamp: str = "2026-11-20T10:00:00Z", **data: Any
) -> dict[str, Any]:
    return {"type": event_type, "timestamp": timestamp, "data": {"run_id": run_id, **data}}


def post_pipeline(
    client: FlaskClient,
    body: bytes | str | dict[str, Any],
    webhook_id: str | None = None,
    secret: str = PIPELINE_SECRET,
    when: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """Sign the exact bytes as the Standard Webhooks scheme does, and post them."""
    raw = _bytes(body)
    signed = pipeline_headers(raw, webhook_id or f"msg_{uuid.uuid4().hex}", secret, when)
    return client.post("/webhooks/pipeline", data=raw, headers={**signed, **(headers or {})})


def pipeline_headers(
    raw: bytes, webhook_id: str, secret: str = PIPELINE_SECRET, when: datetime | None = None
) -> dict[str, str]:
    """Return the Standard Webhooks headers signing ``raw``."""
    timestamp = str(int((when or datetime.now(UTC)).timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }


def post_wandb(
    client: FlaskClient,
    body: bytes | str | dict[str, Any],
    token: str | None = WANDB_TOKEN,
    secret: str | None = WANDB_SECRET,
) -> TestResponse:
    """Post a W&B automation webhook with its bearer token and HMAC signature."""
    raw = _bytes(body)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if secret is not None:
        digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
        headers["X-Wandb-Signature"] = base64.b64encode(digest).decode()
    return client.post("/webhooks/wandb", data=raw, headers=headers)


def post_s3(
    client: FlaskClient, body: bytes | str | dict[str, Any], token: str | None = S3_TOKEN
) -> TestResponse:
    """Post an EventBridge or bare S3 event with the API-destination bearer token."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Amazon/EventBridge/ApiDestinations",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/webhooks/s3", data=_bytes(body), headers=headers)


def post_sns(client: FlaskClient, envelope: dict[str, Any]) -> TestResponse:
    """Post an SNS envelope as SNS does: text/plain, with its x-amz-sns headers."""
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "User-Agent": "Amazon Simple Notification Service Agent",
        "x-amz-sns-message-type": envelope["Type"],
        "x-amz-sns-message-id": envelope["MessageId"],
        "x-amz-sns-topic-arn": envelope["TopicArn"],
    }
    return client.post("/webhooks/s3", data=json.dumps(envelope), headers=headers)


def sns_notification(
    signer: SnsSigner, s3_event: bytes | dict[str, Any], message_id: str | None = None, **options: Any
) -> dict[str, Any]:
    """Wrap an S3 event in a signed SNS notification from the allowed topic."""
    message = _bytes(s3_event).decode()
    return signer.notification(message, options.pop("topic_arn", TOPIC_ARN), message_id=message_id, **options)
