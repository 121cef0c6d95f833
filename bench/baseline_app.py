"""The ingest benchmark's baseline: the least a webhook receiver can do on this machine.

One endpoint inserts the raw body into a one-table PostgreSQL database and answers
202: no verification, no validation, no processing. bench/ingest.py serves it with
the ingester's own gunicorn settings; ``BASELINE_DATABASE_URL`` names the database.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, Response, jsonify, request

app = Flask(__name__)
# Up to four connections per gunicorn worker, as the ingester's inbox keeps (store/inbox.py):
# a gevent worker serves several requests at once, and with one connection they would queue
# for it. Autocommit makes the insert a single round trip, the best a durable receiver can do.
_slots = threading.BoundedSemaphore(4)
_idle: list[psycopg.Connection] = []


@app.post("/webhooks/pipeline")
def receive() -> tuple[Response, int]:
    """Store the raw body and acknowledge it."""
    body = request.get_data()
    with _slots:
        connection = (
            _idle.pop() if _idle else psycopg.connect(os.environ["BASELINE_DATABASE_URL"], autocommit=True)
        )
        try:
            row = connection.execute(
                "INSERT INTO deliveries (body) VALUES (%s) RETURNING id", (body,)
            ).fetchone()
        finally:
            if not connection.closed:
                _idle.append(connection)
    assert row is not None
    return jsonify(status="accepted", event_id=row[0]), 202
