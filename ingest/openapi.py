"""The OpenAPI 3.1 document of every endpoint, with schemas generated from the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, TypeAdapter

from handlers.events import (
    EventBridgeS3Event,
    PipelineEvent,
    S3Records,
    S3TestEvent,
    SnsEnvelope,
    WandbAutomation,
)
from ingest.parsing import MAX_JSON_DEPTH

blueprint = Blueprint("openapi", __name__)


class Accepted(BaseModel):
    status: Literal["accepted", "ignored", "invalid"]
    event_id: int
    message: str | None = None
    errors: list[dict[str, Any]] | None = None


class Duplicate(BaseModel):
    status: Literal["duplicate"]
    event_id: int


class Error(BaseModel):
    error: str
    message: str
    details: Any = None
    event_id: int | None = None


class Health(BaseModel):
    status: str
    revision: str | None = None
    error: str | None = None
    message: str | None = None


S3Notification = SnsEnvelope | EventBridgeS3Event | S3Records | S3TestEvent
REF = "#/components/schemas/{model}"


# The pipeline and W&B endpoints refuse a body holding NUL (\u0000) in any string or key,
# which PostgreSQL text cannot store (ingest/parsing.py): their schemas say so of every string,
# key and free-form value.
NO_NUL = "^[^\\x00]*$"
JSON_WITHOUT_NUL = "JsonWithoutNul"
_JSON_WITHOUT_NUL_REF = {"$ref": REF.format(model=JSON_WITHOUT_NUL)}
_JSON_WITHOUT_NUL = {
    "description": "Any JSON value without NUL (\\u0000) in its strings and keys",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": _JSON_WITHOUT_NUL_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": _JSON_WITHOUT_NUL_REF,
        },
    ],
}


def _schema(annotation: Any, components: dict[str, Any], refuses_nul: bool = False) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=REF, by_alias=True)
    if refuses_nul:
        _refuse_nul(schema)
        components[JSON_WITHOUT_NUL] = _JSON_WITHOUT_NUL
    components.update(schema.pop("$defs", {}))
    return schema


def _refuse_nul(schema: Any) -> None:
    """Make every string, key and free-form value under ``schema`` refuse NUL."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and "pattern" not in schema and "const" not in schema:
            schema["pattern"] = NO_NUL
        if schema.get("type") == "object":
            schema["propertyNames"] = {"pattern": NO_NUL}
            if schema.get("additionalProperties", True) is True:
                schema["additionalProperties"] = _JSON_WITHOUT_NUL_REF
        for value in list(schema.values()):
            _refuse_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _refuse_nul(value)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str, components: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **_json(_schema(Error, components))}


def _webhook(
    summary: str,
    body: Any,
    security: list[dict[str, list[str]]],
    components: dict[str, Any],
    refuses_nul: bool = True,
) -> Any:
    responses = {
        "200": {"description": "Already received; nothing changed", **_json(_schema(Duplicate, components))},
        "202": {
            "description": "Stored durably; processed by a worker",
            **_json(_schema(Accepted, components)),
        },
        "400": _error(
            f"Body is not a JSON object, or nests deeper than {MAX_JSON_DEPTH} levels (kept in the inbox as"
            " invalid), or ended before its Content-Length (not kept)",
            components,
        ),
        "401": _error("Missing or bad credentials, signature or timestamp", components),
        "403": _error("SNS topic not allowed", components),
        "408": _error("Nothing more of the body came for BODY_TIMEOUT_SECONDS (not kept)", components),
        "413": _error("Body larger than MAX_BODY_BYTES", components),
        "422": _error("Body does not match the event schema (kept in the inbox as invalid)", components),
        "503": _error("Database unavailable; retry later", components),
    }
    return {
        "post": {
            "summary": summary,
            "security": security,
            "requestBody": {"required": True, **_json(_schema(body, components, refuses_nul))},
            "responses": responses,
        }
    }


@cache
def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    components: dict[str, Any] = {}
    health = {"description": "Status", **_json(_schema(Health, components))}
    paths = {
        "/webhooks/pipeline": _webhook(
            "A signed run event from the training pipeline (Standard Webhooks)",
            PipelineEvent,
            [{"standardWebhooks": []}],
            components,
        ),
        "/webhooks/wandb": _webhook(
            "A W&B automation webhook",
            WandbAutomation,
            [{"wandbToken": []}, {"wandbSignature": []}],
            components,
        ),
        "/webhooks/s3": _webhook(
            "An S3 notification: a signed SNS envelope, an EventBridge event or a bare S3 event",
            S3Notification,
            [{}, {"s3Token": []}],
            components,
            refuses_nul=False,
        ),
        "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": health}}},
        "/readyz": {
            "get": {
                "summary": "The database is reachable and its schema is current",
                "responses": {"200": health, "503": health},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    from web import schemas

    paths.update(
        schemas.paths(lambda model: _schema(model, components), lambda text: _error(text, components))
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "training-db ingester", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "standardWebhooks": {"type": "apiKey", "in": "header", "name": "webhook-signature"},
                "wandbToken": {"type": "http", "scheme": "bearer"},
                "wandbSignature": {"type": "apiKey", "in": "header", "name": "X-Wandb-Signature"},
                "s3Token": {"type": "http", "scheme": "bearer"},
                **schemas.SECURITY_SCHEMES,
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(document())
