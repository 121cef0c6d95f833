"""Fuzz every operation of /openapi.json through the real app: no 5xx, no answer the document lacks.

Schemathesis generates valid (positive) and invalid (negative) requests from the document.
Fuzzed bodies are sent with the credentials of their source, as its sender would send them,
so that they reach parsing and validation instead of stopping at authentication; a negative
case whose mutation is in its headers (a missing signature, say) is sent as generated.

The document defines no links (a webhook creates nothing a client can address), so
schemathesis's state machine has nothing to chain; its stateful checks run on every answer,
beside one of our own: every answer naming an event_id finds that delivery in the inbox,
byte for byte unless it was a duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis import Case, GenerationMode, checks
from schemathesis.core.parameters import ParameterLocation

from store import inbox
from tests.conftest import S3_TOKEN, WANDB_SECRET, WANDB_TOKEN
from tests.web.conftest import ADMIN, ADMIN_TOKEN, READ_TOKEN
from tests.webhooks import pipeline_headers

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.use_after_free,
    checks.ensure_resource_availability,
]
OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/webhooks/pipeline"),
    ("POST", "/webhooks/wandb"),
    ("POST", "/webhooks/s3"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/{run_id}"),
    ("GET", "/api/objectives"),
    ("GET", "/api/compare"),
    ("GET", "/api/pareto"),
    ("GET", "/api/stats"),
    ("GET", "/api/events"),
    ("GET", "/api/runs/{run_id}/scaffolds"),
    ("GET", "/api/runs/{run_id}/history"),
    ("GET", "/api/history"),
    ("GET", "/api/scaffolds"),
    ("GET", "/api/diversity"),
    ("GET", "/api/scaffold.svg"),
    ("POST", "/api/events/{event_id}/replay"),
]
# Only these GETs take no parameters: they have no invalid form to generate.
WITHOUT_PARAMETERS = {"/healthz", "/readyz", "/metrics", "/api/objectives"}
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if path not in WITHOUT_PARAMETERS or mode is GenerationMode.POSITIVE
]
EXAMPLES = {"GET": 5, "POST": 40}
API_EXAMPLES = 25


def credentials(path: str, body: bytes) -> dict[str, str]:
    """Return the headers the source's sender would authenticate ``body`` with."""
    if path.startswith("/api/"):
        return ADMIN
    if path == "/webhooks/pipeline":
        return pipeline_headers(body, f"msg_{uuid.uuid4().hex}")
    if path == "/webhooks/wandb":
        signature = base64.b64encode(hmac.new(WANDB_SECRET.encode(), body, hashlib.sha256).digest()).decode()
        return {"Authorization": f"Bearer {WANDB_TOKEN}", "X-Wandb-Signature": signature}
    return {"Authorization": f"Bearer {S3_TOKEN}"}


def body_of(case: Case) -> bytes:
    request = case.as_transport_kwargs()
    if "json" in request:
        return json.dumps(request["json"]).encode()
    data = request.get("data", b"")
    return data.encode() if isinstance(data, str) else bytes(data)


def mutated_only_in_body(case: Case) -> bool:
    return case.meta is not None and case.meta.phase.data.parameter_location == ParameterLocation.BODY


def send(client: FlaskClient, case: Case) -> tuple[bytes, Any, dict[str, str]]:
    """Send ``case`` as its source's sender would; return the body, the response and the headers sent."""
    body = body_of(case) if case.method == "POST" else b""
    headers = {name: str(value) for name, value in (case.headers or {}).items()}
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    # The read API's requests carry no body: its token goes with every one, so that they reach
    # the parameters' validation.
    if case.path.startswith("/api/") or (case.method == "POST" and (not negative or mutated_only_in_body(case))):
        headers = {**headers, **credentials(case.path, body)}
    response = client.open(
        case.formatted_path, method=case.method, data=body, headers=headers, query_string=case.query
    )
    return body, response, headers


def valid_under_the_document(document: dict[str, Any], path: str, body: bytes) -> bool:
    """Tell whether ``body`` is valid under the operation's whole request schema.

    Schemathesis makes a negative body by breaking one branch of a oneOf; the result can be
    valid under another branch (a run.progress made into a run.failed), and is then rightly
    accepted.
    """
    try:
        instance = json.loads(body)
    except ValueError:
        return False
    pointer = "/".join(
        ["#/paths", path.replace("/", "~1"), "post/requestBody/content/application~1json/schema"]
    )
    validator = Draft202012Validator(
        {**document, "$ref": pointer}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return validator.is_valid(instance)


@pytest.fixture
def app(app: Flask) -> Flask:
    """The app with the read API's tokens set as well."""
    app.config["SETTINGS"] = app.config["SETTINGS"].model_copy(
        update={"read_api_token": READ_TOKEN, "admin_api_token": ADMIN_TOKEN}
    )
    return app


@pytest.fixture
def schema(app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=str)
def test_fuzzed_requests_get_documented_answers_and_accepted_ones_are_stored(
    method: str, path: str, mode: GenerationMode, schema: Any, client: FlaskClient
) -> None:
    operation = schema[path][method]
    document = client.get("/openapi.json").get_json()
    used = list(CHECKS)
    if path == "/webhooks/s3":
        # SNS and EventBridge drop a message answered 4xx: an invalid S3 body is kept and answered 202.
        used.remove(checks.negative_data_rejection)

    examples = API_EXAMPLES if path.startswith("/api/") else EXAMPLES[method]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Case) -> None:
        body, response, headers = send(client, case)
        answer = response.get_json(silent=True)
        duplicate = isinstance(answer, dict) and answer.get("status") == "duplicate"
        # Hypothesis sends some bodies twice; W&B and S3 deliveries are known by their bytes, so
        # the second is a duplicate (200) of the first, whose own answer was checked.
        # A body over MAX_BODY_BYTES is refused with 413, a status the rejection check does not
        # list; status_code_conformance still holds it to the document.
        skipped = {checks.negative_data_rejection} if duplicate or response.status_code == 413 else set()
        negative = case.meta is not None and case.meta.generation.mode.is_negative
        if negative and response.status_code == 202 and valid_under_the_document(document, path, body):
            skipped.add(checks.negative_data_rejection)
        case.validate_response(response, checks=[c for c in used if c not in skipped], headers=headers)
        if isinstance(answer, dict) and "event_id" in answer:
            delivery = inbox.get_delivery(answer["event_id"])
            assert delivery is not None
            # A duplicate is recognised by its source's identity (webhook-id, S3 records), not its bytes.
            assert response.status_code == 200 or delivery.body == body

    fuzz()
