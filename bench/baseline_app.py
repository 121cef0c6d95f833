"""The ingest benchmark's baseline: the least a webhook receiver can do on this machine.

One endpoint inserts the raw body into a one-table PostgreSQL database and answers
202: no verification, no validation, no processing. bench/ingest.py serves it with
the ingester's own gunicorn settings; ``BASELINE_DATABASE_URL`` names the database.
"""

from __future__ import annotations

import os

import psycopg
from flask import Flask, Response, jsonify, request

app = Flask(__name__)
_connection: psycopg.Connection | None = None


def _database() -> psycopg.Connection:
    # One connection per gunicorn worker, opened after the fork; autocommit makes the
    # insert a single round trip, the best a durable receiver can do.
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BASELINE_DATABASE_URL"], autocommit=True)
    return _connection


@app.post("/webhooks/pipeline")
def receive() -> tuple[Response, int]:
    """Store the raw body and acknowledge it."""
    row = (
        _database()
        .execute("INSERT INTO deliveries (body) VALUES (%s) RETURNING id", (request.get_data(),))
        .fetchone()
    )
    assert row is not None
    return jsonify(status="accepted", event_id=row[0]), 202
