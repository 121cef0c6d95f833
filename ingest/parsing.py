"""From a raw body to a typed event: shared by the web process and the worker."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from handlers.events import (
    EventBridgeS3Event,
    EventKind,
    S3Records,
    S3TestEvent,
    SnsEnvelope,
    SubscriptionMessage,
    WandbAutomation,
    objects_from_eventbridge,
    objects_from_records,
    pipeline_event,
    pipeline_event_check,
    records_dedupe_key,
    stored_run_molecules,
)
from store import has_nul_escape

_json_object = TypeAdapter(dict[str, Any])


# How deep arrays and objects may nest in a body, the top-level object included. pydantic's JSON
# parser stops there, before a hostile body can exhaust the stack; no config or summary comes
# near it. tests/ingest/test_parsing.py holds the parser to this number.
MAX_JSON_DEPTH = 201


class Malformed(Exception):
    """The body is not a JSON object (400); ``error`` names why for the answer."""

    def __init__(self, message: str, error: str = "malformed_json") -> None:
        super().__init__(message)
        self.error = error


class Invalid(Exception):
    """The body is JSON but not what the source sends (422, or kept as invalid)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass(frozen=True)
class Parsed:
    """A validated delivery: its kind, the event handlers take, and its natural dedupe key."""

    kind: EventKind
    event: BaseModel
    dedupe_key: str | None = None

    @property
    def run_id(self) -> str | None:
        """The run a pipeline event is about (None for the other sources' events)."""
        run_id = getattr(getattr(self.event, "data", None), "run_id", None)
        return run_id if isinstance(run_id, str) else None


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _errors(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(part) for part in e["loc"]], "type": e["type"], "message": e["msg"]}
        for e in error.errors(include_url=False, include_input=False)
    ]


def _not_json(error: ValidationError) -> Malformed | None:
    """Return the Malformed to raise when ``error`` says the body is not JSON the parser takes."""
    for detail in error.errors():
        if detail["type"] == "json_invalid":
            if "recursion limit exceeded" in detail["msg"]:
                return Malformed(
                    f"body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels", "nesting_too_deep"
                )
            return Malformed(f"body is not valid JSON: {detail['msg']}")
    return None


def _validate(adapter: Any, body: bytes) -> Any:
    if b"\\u0000" in body and has_nul_escape(body.decode("utf-8", "replace")):
        raise Invalid("strings must not contain NUL (\\u0000): the database cannot store it")
    try:
        return adapter.validate_json(body)
    except ValidationError as error:
        if (malformed := _not_json(error)) is not None:
            raise malformed from None
        raise Invalid("body does not match the event schema", _errors(error)) from None


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a body that must be one JSON object."""
    try:
        return _json_object.validate_json(body)
    except ValidationError as error:
        raise _not_json(error) or Malformed("body must be a JSON object") from None


def parse_pipeline(body: bytes) -> Parsed:
    """Validate a pipeline run event."""
    event = _validate(pipeline_event, body)
    return Parsed(EventKind(event.type), event)


def check_pipeline(body: bytes) -> Parsed:
    """Validate a pipeline run event as :func:`parse_pipeline` does, without building its documents.

    For the web process, which stores the raw body: the event it returns holds no launch config,
    summary or metrics, and the worker parses the body again. A body it refuses is refused by
    :func:`parse_pipeline`, so that the answer names the problem in the same words.
    """
    try:
        event = _validate(pipeline_event_check, body)
    except (Malformed, Invalid):
        return parse_pipeline(body)
    return Parsed(EventKind(event.type), event)


_wandb_automation = TypeAdapter(WandbAutomation)


def parse_wandb(body: bytes) -> Parsed:
    """Validate a W&B automation payload."""
    return Parsed(EventKind.WANDB_AUTOMATION, _validate(_wandb_automation, body))


def is_sns_envelope(document: dict[str, Any]) -> bool:
    return "Type" in document and "TopicArn" in document and "Signature" in document


Model = TypeVar("Model", bound=BaseModel)


def _model(model: type[Model], document: Any) -> Model:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise Invalid(f"not a valid {model.__name__}", _errors(error)) from None


def sns_envelope(document: dict[str, Any]) -> SnsEnvelope:
    return _model(SnsEnvelope, document)


def parse_s3_document(document: dict[str, Any], body: bytes) -> Parsed:
    """Validate an S3 event, an S3 test event or an EventBridge S3 event."""
    if "detail-type" in document:
        event = _model(EventBridgeS3Event, document)
        return Parsed(EventKind.S3_OBJECTS, objects_from_eventbridge(event), f"eventbridge:{event.id}")
    if "Records" in document:
        records = _model(S3Records, document)
        return Parsed(EventKind.S3_OBJECTS, objects_from_records(records), records_dedupe_key(records))
    if document.get("Event") == "s3:TestEvent":
        return Parsed(EventKind.S3_TEST_EVENT, _model(S3TestEvent, document), f"body:{body_hash(body)}")
    raise Invalid("not an S3 event: expected Records, an s3:TestEvent or an EventBridge event")


def parse_sns(envelope: SnsEnvelope) -> Parsed:
    """Turn a verified SNS envelope into its event; a Notification carries an S3 event."""
    dedupe_key = f"sns:{envelope.MessageId}"
    if envelope.Type == "SubscriptionConfirmation":
        return Parsed(
            EventKind.SNS_SUBSCRIPTION_CONFIRMATION, SubscriptionMessage(envelope=envelope), dedupe_key
        )
    if envelope.Type == "UnsubscribeConfirmation":
        return Parsed(
            EventKind.SNS_UNSUBSCRIBE_CONFIRMATION, SubscriptionMessage(envelope=envelope), dedupe_key
        )
    message = envelope.Message.encode()
    try:
        inner = json_object(message)
    except Malformed as error:
        raise Invalid(f"SNS message is not an S3 event: {error}") from None
    parsed = parse_s3_document(inner, message)
    return Parsed(parsed.kind, parsed.event, dedupe_key)


def parse_s3(body: bytes) -> Parsed:
    """Re-read a stored S3 delivery (already authenticated) in whichever form it came."""
    document = json_object(body)
    if is_sns_envelope(document):
        return parse_sns(sns_envelope(document))
    return parse_s3_document(document, body)


def parse_stored(source: str, body: bytes, kind: str | None = None) -> Parsed:
    """Re-read a stored delivery of ``kind`` (as the inbox recorded it) for the worker or a replay."""
    if source == "pipeline":
        if kind == EventKind.RUN_MOLECULES:
            return _read_molecules(body)
        return parse_pipeline(body)
    if source == "wandb":
        return parse_wandb(body)
    if source == "s3":
        return parse_s3(body)
    raise Invalid(f"unknown source {source!r}")


def _read_molecules(body: bytes) -> Parsed:
    """Read a stored batch of molecules, leaving its molecules for the store to check.

    orjson builds a batch's thousand molecules in half the time pydantic takes. Whatever this
    reading does not take (a number orjson does not read, an escaped NUL, a body no longer of
    this kind) is read by :func:`parse_pipeline`, which gives the verdict it always gave.
    """
    if b"\\u0000" in body:
        return parse_pipeline(body)
    try:
        return Parsed(EventKind.RUN_MOLECULES, stored_run_molecules.validate_python(orjson.loads(body)))
    except (orjson.JSONDecodeError, ValidationError):
        return parse_pipeline(body)
