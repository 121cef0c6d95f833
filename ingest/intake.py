"""The intake pipeline of every delivery, in a fixed order, independent of HTTP.

authenticate the raw bytes -> parse -> validate -> commit to the inbox -> answer.
The Flask endpoints, ``replay file`` and ``consume-sqs`` all go through here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import store
from handlers import IGNORED
from ingest import auth, metrics
from ingest.parsing import (
    Invalid,
    Malformed,
    Parsed,
    body_hash,
    check_pipeline,
    is_sns_envelope,
    json_object,
    parse_s3_document,
    parse_sns,
    parse_wandb,
    sns_envelope,
)
from ingest.settings import Settings
from ingest.sources import Source
from store import DatabaseUnavailable

log = logging.getLogger("ingest")

# Headers worth keeping beside the raw body: what identifies and authenticates a delivery.
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "x-amz-sns-message-type",
    "x-amz-sns-message-id",
    "x-amz-sns-topic-arn",
    "x-amz-sns-subscription-arn",
)
# Every header a step of the intake reads; the web endpoints pass on only these.
READ_HEADERS = (*KEPT_HEADERS, "webhook-signature", "authorization", "x-wandb-signature")
MAX_DEDUPE_KEY = 255


@dataclass
class Receipt:
    """The answer to one delivery."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """A delivery refused before it was stored."""

    def __init__(self, status: int, error: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.details = status, error, message, details

    def receipt(self) -> Receipt:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        headers = {"Retry-After": "5"} if self.status == 503 else {}
        return Receipt(self.status, body, headers)


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}


class Intake:
    """Authenticate, validate and store deliveries from each source."""

    def __init__(self, settings: Settings, sns_verifier: auth.SnsVerifier) -> None:
        self.settings = settings
        self.sns_verifier = sns_verifier

    def receive(
        self, source: Source, body: bytes, headers: Mapping[str, str], trusted: bool = False
    ) -> Receipt:
        """Take one delivery from ``source``; ``trusted`` skips authentication (SQS, replays of the inbox)."""
        metrics.received(source)
        # Header names ignore case: lower them once, for a plain dict every step can read.
        headers = {name.lower(): value for name, value in headers.items()}
        try:
            if source is Source.PIPELINE:
                return self._pipeline(body, headers, trusted)
            if source is Source.WANDB:
                return self._wandb(body, headers, trusted)
            return self._s3(body, headers, trusted)
        except Rejected as rejection:
            metrics.rejected(source, rejection.error)
            log.info("webhook.rejected source=%s reason=%s", source, rejection.error)
            return rejection.receipt()

    def _auth(self, check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except auth.AuthError as error:
            raise Rejected(401, error.reason, error.message) from None
        except auth.TopicNotAllowed as error:
            raise Rejected(403, "topic_not_allowed", str(error)) from None

    def _pipeline(self, body: bytes, headers: Mapping[str, str], trusted: bool) -> Receipt:
        if trusted:
            webhook_id = headers.get("webhook-id") or f"body:{body_hash(body)}"
        else:
            webhook_id = self._auth(
                auth.verify_pipeline,
                self.settings.pipeline_webhook_secret,
                body,
                headers,
                self.settings.webhook_tolerance_seconds,
            )
        return self._store_validated(
            Source.PIPELINE, body, headers, f"webhook:{webhook_id}", check_pipeline, 422
        )

    def _wandb(self, body: bytes, headers: Mapping[str, str], trusted: bool) -> Receipt:
        if not trusted:
            self._auth(
                auth.verify_wandb,
                self.settings.wandb_webhook_token,
                self.settings.wandb_webhook_secret,
                body,
                headers,
            )
        # W&B sends no delivery id, and its body names only a project: the same body is the
        # same delivery only while that one waits for its sync. Once the sync has begun, it
        # may have read W&B before the change this body announces (another run's, say).
        return self._store_validated(
            Source.WANDB, body, headers, f"body:{body_hash(body)}", parse_wandb, 422, only_while_waiting=True
        )

    def _s3(self, body: bytes, headers: Mapping[str, str], trusted: bool) -> Receipt:
        bearer = headers.get("authorization")
        if bearer and not trusted:
            self._auth(auth.verify_bearer, self.settings.s3_webhook_token, headers)
        try:
            document = json_object(body)
        except Malformed as error:
            if not (bearer or trusted):
                raise Rejected(
                    401, "missing_credentials", "send a signed SNS message or a bearer token"
                ) from None
            return self._store_invalid(
                Source.S3, body, headers, f"body:{body_hash(body)}", str(error), 400, error=error.error
            )
        if is_sns_envelope(document):
            return self._sns(document, body, headers, trusted)
        if not (bearer or trusted):
            raise Rejected(401, "missing_credentials", "send a signed SNS message or a bearer token")
        try:
            parsed = parse_s3_document(document, body)
        except Invalid as error:
            # SNS and EventBridge drop a message answered 4xx: keep it, answer 202.
            return self._store_invalid(
                Source.S3, body, headers, f"body:{body_hash(body)}", str(error), 202, error.errors
            )
        return self._store(Source.S3, body, headers, parsed)

    def _sns(
        self, document: dict[str, Any], body: bytes, headers: Mapping[str, str], trusted: bool
    ) -> Receipt:
        try:
            envelope = sns_envelope(document)
        except Invalid as error:
            if not trusted:
                raise Rejected(
                    401, "bad_signature", "SNS message is missing signed fields", error.errors
                ) from None
            return self._store_invalid(Source.S3, body, headers, f"body:{body_hash(body)}", str(error), 202)
        if not trusted:
            self._auth(self.sns_verifier.verify, document)
        try:
            parsed = parse_sns(envelope)
        except Invalid as error:
            return self._store_invalid(
                Source.S3, body, headers, f"sns:{envelope.MessageId}", str(error), 202, error.errors
            )
        return self._store(Source.S3, body, headers, parsed)

    def _store_validated(
        self,
        source: Source,
        body: bytes,
        headers: Mapping[str, str],
        dedupe_key: str,
        parse: Any,
        invalid_status: int,
        only_while_waiting: bool = False,
    ) -> Receipt:
        try:
            parsed = parse(body)
        except Malformed as error:
            return self._store_invalid(
                source,
                body,
                headers,
                dedupe_key,
                str(error),
                400,
                error=error.error,
                only_while_waiting=only_while_waiting,
            )
        except Invalid as error:
            return self._store_invalid(
                source,
                body,
                headers,
                dedupe_key,
                str(error),
                invalid_status,
                error.errors,
                only_while_waiting=only_while_waiting,
            )
        return self._store(
            source, body, headers, Parsed(parsed.kind, parsed.event, dedupe_key), only_while_waiting
        )

    def _store(
        self,
        source: Source,
        body: bytes,
        headers: Mapping[str, str],
        parsed: Parsed,
        only_while_waiting: bool = False,
    ) -> Receipt:
        dedupe_key = parsed.dedupe_key or f"body:{body_hash(body)}"
        status = "ignored" if parsed.kind in IGNORED else "pending"
        event_id, new = self._record(
            source, parsed.kind, dedupe_key, body, headers, status, None, only_while_waiting, parsed.run_id
        )
        if not new:
            return self._duplicate(source, event_id)
        return Receipt(
            202, {"status": "accepted" if status == "pending" else "ignored", "event_id": event_id}
        )

    def _store_invalid(
        self,
        source: Source,
        body: bytes,
        headers: Mapping[str, str],
        dedupe_key: str,
        message: str,
        status: int,
        errors: list[dict[str, Any]] | None = None,
        error: str = "malformed_json",
        only_while_waiting: bool = False,
    ) -> Receipt:
        refusal: dict[str, Any] = {
            "answer": status,
            "error": error if status == 400 else "invalid_event",
            "message": message,
            "errors": errors or [],
        }
        event_id, new = self._record(
            source, "invalid", dedupe_key, body, headers, "invalid", _json_text(refusal), only_while_waiting
        )
        if not new:
            return self._duplicate(source, event_id)
        metrics.rejected(source, refusal["error"])
        return _refused(event_id, refusal)

    def _duplicate(self, source: Source, event_id: int) -> Receipt:
        metrics.duplicate(source)
        # A sender that retries what was refused must hear the refusal again, never a success.
        try:
            refusal = store.delivery_refusal(event_id)
        except DatabaseUnavailable as failure:
            raise _unavailable(source, failure) from None
        if refusal is None:
            return Receipt(200, {"status": "duplicate", "event_id": event_id})
        return _refused(event_id, _stored_refusal(source, refusal))

    def _record(
        self,
        source: Source,
        kind: str,
        dedupe_key: str,
        body: bytes,
        headers: Mapping[str, str],
        status: str,
        error: str | None,
        only_while_waiting: bool = False,
        run_id: str | None = None,
    ) -> tuple[int, bool]:
        try:
            return store.record_delivery(
                str(source),
                str(kind),
                _bounded(dedupe_key),
                body,
                kept_headers(headers),
                status=status,
                last_error=error,
                only_while_waiting=only_while_waiting,
                run_id=run_id,
            )
        except DatabaseUnavailable as failure:
            raise _unavailable(source, failure) from None


def _unavailable(source: Source, failure: DatabaseUnavailable) -> Rejected:
    log.error("inbox.unavailable source=%s error=%s", source, failure)
    if store.schema_missing(failure):
        return Rejected(503, "schema_behind", "the database has no training-db tables: run `training-db migrate`")
    return Rejected(503, "database_unavailable", "the inbox database is unavailable; retry later")


def _refused(event_id: int, refusal: dict[str, Any]) -> Receipt:
    if refusal["answer"] == 202:
        # SNS and EventBridge drop a message answered 4xx: the refusal is told in a 2xx.
        body = {"status": "invalid", "event_id": event_id, "message": refusal["message"]}
        return Receipt(202, {**body, "errors": refusal["errors"]})
    body = {"error": refusal["error"], "message": refusal["message"], "details": refusal["errors"]}
    return Receipt(refusal["answer"], {**body, "event_id": event_id})


def _stored_refusal(source: Source, last_error: str) -> dict[str, Any]:
    """Read back how a delivery was refused, from its inbox row's error."""
    try:
        refusal = json.loads(last_error)
    except ValueError:
        refusal = None
    if not isinstance(refusal, dict):
        refusal = {"message": last_error}
    # Rows refused before the answer was recorded with the error get the schema's answer: still
    # a refusal, never a success.
    fallback = {"answer": 202 if source is Source.S3 else 422, "error": "invalid_event"}
    return {**fallback, "message": "", "errors": [], **refusal}


def _bounded(dedupe_key: str) -> str:
    # A sender chooses its webhook-id, SNS MessageId or EventBridge id, and may make it one the
    # inbox column cannot hold (too long, or with a NUL, which PostgreSQL text refuses): its
    # hash identifies the delivery as well.
    if len(dedupe_key) <= MAX_DEDUPE_KEY and "\x00" not in dedupe_key:
        return dedupe_key
    return "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
