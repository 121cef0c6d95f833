"""The HTTP endpoints: three webhook receivers, health, readiness and metrics."""

from __future__ import annotations

import logging

import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout

import store
from ingest import metrics
from ingest.intake import READ_HEADERS, Intake, Receipt
from ingest.sources import Source
from store import DatabaseUnavailable, unavailable_as_error

blueprint = Blueprint("webhooks", __name__)
log = logging.getLogger("ingest")


def _answer(receipt: Receipt) -> Response:
    # Built directly: jsonify's provider (sorting, indenting checks, default hooks) costs more
    # than the rest of answering, and receipts hold only JSON types.
    return Response(orjson.dumps(receipt.body), receipt.status, receipt.headers, mimetype="application/json")


# Where WSGI puts each header the intake reads. Looked up there directly: werkzeug's
# case-insensitive view rewrites the name on every lookup, and copying them all costs more.
_ENVIRON_KEYS = {
    name: "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
    for name in READ_HEADERS
}


class BodyIncomplete(BadRequest):
    """The connection ended before the body its request announced."""

    name = "Body Incomplete"


def _read_body(max_bytes: int, timeout: float) -> bytes:
    """Read the whole body, or raise the HTTP error that says why it could not be read.

    Not request.get_data(): it returns a chunked body cut at MAX_CONTENT_LENGTH as if it were
    whole, and takes a read that timed out for a client that went away.
    """
    environ = request.environ
    length = request.content_length
    if length is not None and length > max_bytes:
        raise RequestEntityTooLarge()
    if length is None and not environ.get("wsgi.input_terminated"):
        # A server that does not end a body without a length for us: reading could hang.
        return b""
    # A byte past the limit tells a chunked body of exactly MAX_BODY_BYTES from a longer one.
    wanted = max_bytes + 1 if length is None else length
    # gunicorn's socket, read by its body reader: a timeout on it bounds each wait for more.
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(timeout)
    try:
        body: bytes = environ["wsgi.input"].read(wanted)
    except TimeoutError:
        raise RequestTimeout(
            f"the body stopped arriving: nothing came for {timeout:g} s (BODY_TIMEOUT_SECONDS)"
        ) from None
    except (OSError, ValueError):
        raise BodyIncomplete("the connection broke before the body was complete") from None
    except ParseException as error:
        raise BadRequest(f"the chunked body is malformed: {error}") from None
    finally:
        if sock is not None:
            sock.settimeout(None)
    if len(body) > max_bytes:
        raise RequestEntityTooLarge()
    if length is not None and len(body) < length:
        raise BodyIncomplete(f"the body ended after {len(body)} of the {length} bytes of its Content-Length")
    return body


def _receive(source: Source) -> Response:
    intake: Intake = current_app.extensions["intake"]
    environ = request.environ
    headers = {name: value for name, key in _ENVIRON_KEYS.items() if (value := environ.get(key)) is not None}
    webhook_id = headers.get("webhook-id")
    if webhook_id is not None and not webhook_id.isascii():
        headers["webhook-id"] = _as_sent(webhook_id)
    # Raw bytes, never get_json(): signatures cover the exact bytes, and SNS posts text/plain.
    body = _read_body(intake.settings.max_body_bytes, intake.settings.body_timeout_seconds)
    return _answer(intake.receive(source, body, headers))


def _as_sent(value: str) -> str:
    """Return a header value as its sender wrote it, in UTF-8, where the server decoded it as Latin-1.

    WSGI servers hand header bytes over decoded as Latin-1 (PEP 3333); a Standard Webhooks sender
    signs its webhook-id in UTF-8.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


@blueprint.post("/webhooks/pipeline")
def pipeline() -> Response:
    """Receive a signed run event from the training pipeline."""
    return _receive(Source.PIPELINE)


@blueprint.post("/webhooks/wandb")
def wandb() -> Response:
    """Receive a W&B automation webhook."""
    return _receive(Source.WANDB)


@blueprint.post("/webhooks/s3")
def s3() -> Response:
    """Receive an S3 notification: SNS, EventBridge or a bare S3 event."""
    return _receive(Source.S3)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Answer while the process is alive."""
    return jsonify(status="ok")


def schema_missing() -> tuple[Response, int]:
    """Answer a request that found the database without training-db's tables: never migrated."""
    log.error("request.schema_missing path=%s: run `training-db migrate`", request.path)
    message = "the database has no training-db tables: run `training-db migrate`"
    return jsonify(error="schema_behind", message=message), 503


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 when the database is reachable and its schema is at the newest migration."""
    try:
        with unavailable_as_error():
            current = store.current_revision()
    except DatabaseUnavailable as error:
        # The driver's message names the database's host and port: for the log, not for anyone.
        log.error("readyz.database_unavailable error=%s", error)
        message = "the database is unavailable; the log says why"
        return jsonify(status="unavailable", error="database_unavailable", message=message), 503
    head = store.head_revision()
    if current != head:
        message = f"schema is at {current or 'nothing'}, newest is {head}: run `training-db migrate`"
        return jsonify(status="unavailable", error="schema_behind", message=message), 503
    return jsonify(status="ready", revision=current), 200


@blueprint.get("/metrics")
def prometheus() -> Response:
    """Expose Prometheus metrics."""
    output, content_type = metrics.exposition()
    return Response(output, content_type=content_type)
