"""Send the pipeline's run events to training-db in one line.

    from ingest.client import send_event
    send_event("run.launched", {"run_id": run_id, "config": config})

The URL and secret come from TRAINING_DB_URL and PIPELINE_WEBHOOK_SECRET unless given.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from standardwebhooks import Webhook

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SendError(Exception):
    """The service refused the event, or could not be reached after every retry."""


def sign(secret: str, webhook_id: str, body: str, when: datetime | None = None) -> dict[str, str]:
    """Return the Standard Webhooks headers for ``body``."""
    when = when or datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, when, body),
        "content-type": "application/json",
    }


def send_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    url: str | None = None,
    secret: str | None = None,
    timestamp: datetime | None = None,
    webhook_id: str | None = None,
    retries: int = 5,
    timeout: float = 10.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Sign and post one run event; retry 429, 5xx and connection errors with backoff."""
    base_url = url or os.environ.get("TRAINING_DB_URL", "http://127.0.0.1:8000")
    secret = secret or os.environ.get("PIPELINE_WEBHOOK_SECRET")
    if not secret:
        raise SendError("no secret: pass secret= or set PIPELINE_WEBHOOK_SECRET")
    event = {
        "type": event_type,
        "timestamp": (timestamp or datetime.now(UTC)).isoformat(),
        "data": dict(data),
    }
    body = json.dumps(event)
    # One id for every attempt, so that a retry of a delivery that did land is a duplicate.
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    endpoint = base_url.rstrip("/") + "/webhooks/pipeline"
    http = session or requests.Session()
    problem = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            sleep(min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        try:
            response = http.post(
                endpoint, data=body.encode(), headers=sign(secret, webhook_id, body), timeout=timeout
            )
        except requests.RequestException as error:
            problem = f"cannot reach {endpoint}: {error}"
            continue
        if response.status_code in RETRY_STATUSES:
            problem = f"{endpoint} answered {response.status_code}: {response.text[:200]}"
            continue
        answer = _json(response)
        if response.status_code >= 400:
            raise SendError(
                f"{endpoint} refused the event ({response.status_code}): {answer.get('message', answer)}"
                + _details(answer)
            )
        return answer
    raise SendError(f"gave up after {retries + 1} attempts: {problem}")


def _details(answer: Mapping[str, Any]) -> str:
    """Return the field-level problems of a refusal (a 422's ``details``), joined on one line."""
    details = answer.get("details")
    if not isinstance(details, list) or not details:
        return ""
    problems = (
        f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('message', d.get('type', '?'))}"
        for d in details
        if isinstance(d, dict)
    )
    return " (" + "; ".join(problems) + ")"


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return answer if isinstance(answer, dict) else {"message": answer}
