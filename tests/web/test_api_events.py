"""/api/events and POST /api/events/<id>/replay: failed deliveries, and running one again."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

import store
from store import inbox
from tests.web.conftest import ADMIN, READ
from tests.webhooks import pipeline_event, post_pipeline


def stored_event(client: FlaskClient, run_id: str, status: str, error: str | None = None) -> int:
    """Deliver a run.launched for run_id through the webhook, then give the stored event a status."""
    response = post_pipeline(
        client, pipeline_event("run.launched", run_id, config={"training": {"batch_size": 8}})
    )
    assert response.status_code == 202
    event_id: int = response.get_json()["event_id"]
    inbox.set_status(event_id, status, error)
    return event_id


def get(client: FlaskClient, **params: Any) -> Any:
    response = client.get("/api/events", query_string=params, headers=READ)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_failed_and_dead_events_are_listed_newest_first_with_their_error(client: FlaskClient) -> None:
    failed = stored_event(client, "run-a", "failed", "boom")
    dead = stored_event(client, "run-b", "dead", "gave up")
    stored_event(client, "run-c", "done")
    events = get(client)["events"]
    assert [(e["id"], e["status"], e["last_error"]) for e in events] == [
        (dead, "dead", "gave up"),
        (failed, "failed", "boom"),
    ]
    assert events[0]["source"] == "pipeline" and events[0]["kind"] == "run.launched"
    assert events[0]["body_bytes"] > 0


def test_events_filter_by_status_and_source_and_page_by_cursor(client: FlaskClient) -> None:
    ids = [stored_event(client, f"run-{i}", "done") for i in range(5)]
    assert get(client, status="done", source="s3")["events"] == []
    first = get(client, status="done", limit=2)
    assert [e["id"] for e in first["events"]] == ids[:-3:-1]
    rest = get(client, status="done", limit=10, cursor=first["next_cursor"])
    assert [e["id"] for e in rest["events"]] == ids[-3::-1]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "broken"}, None),
        ({"cursor": "x"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "\u0661"}, "cursor"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_event_parameters_get_400(
    client: FlaskClient, params: dict[str, str], parameter: str | None
) -> None:
    response = client.get("/api/events", query_string=params, headers=READ)
    assert response.status_code == 400
    assert response.get_json().get("parameter") == parameter


def test_replaying_a_failed_event_applies_it_and_records_done(client: FlaskClient) -> None:
    event_id = stored_event(client, "run-replayed", "failed", "database was down")
    assert store.get_run("run-replayed") is None
    response = client.post(f"/api/events/{event_id}/replay", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {
        "event_id": event_id,
        "status": "done",
        "outcome": "applied",
        "error": None,
    }
    run = store.get_run("run-replayed")
    assert run is not None and run["batch_size"] == 8
    delivery = inbox.get_delivery(event_id)
    assert delivery is not None and delivery.status == "done" and delivery.last_error is None


def test_replaying_an_event_its_handler_refuses_records_it_invalid(client: FlaskClient) -> None:
    event_id = stored_event(client, "run-x", "failed", "boom")
    store.insert_run("run-x")
    # The stored body no longer validates once it is broken in place (as after a schema change).
    store_body_broken(event_id)
    answer = client.post(f"/api/events/{event_id}/replay", headers=ADMIN).get_json()
    assert answer["status"] == "invalid"
    assert "no longer validates" in answer["error"]
    assert get(client, status="invalid")["events"][0]["id"] == event_id


def store_body_broken(event_id: int) -> None:
    from sqlalchemy import update

    from store.database import connect
    from store.models import InboxEvent

    with connect() as connection:
        connection.execute(
            update(InboxEvent).where(InboxEvent.id == event_id).values(body=b'{"type": "run.launched"}')
        )


def test_replaying_a_pending_event_is_refused_the_worker_owns_it(client: FlaskClient) -> None:
    event_id = stored_event(client, "run-p", "pending")
    response = client.post(f"/api/events/{event_id}/replay", headers=ADMIN)
    assert response.status_code == 409
    assert "worker" in response.get_json()["message"]


def test_replaying_an_unknown_event_is_a_404(client: FlaskClient) -> None:
    response = client.post("/api/events/424242/replay", headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
