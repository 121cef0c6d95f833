"""POST /webhooks/wandb: W&B automations, and the project sync they trigger against a fake W&B API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import store
from handlers import Context
from ingest.parsing import body_hash
from ingest.wandb_api import WandbClient
from ingest.worker import Worker
from store import inbox
from tests.fake_wandb import FakeWandb
from tests.webhooks import fixture, fixture_json, post_wandb

ENTITY, PROJECT = "mango-lab", "mango-moo"


@pytest.fixture
def fake_wandb() -> Iterator[FakeWandb]:
    with FakeWandb(api_key="wandb-api-key") as fake:
        yield fake


@pytest.fixture
def syncing_worker(settings, fake_wandb) -> Worker:
    return Worker(
        settings.model_copy(update={"wandb_base_url": fake_wandb.url, "wandb_api_key": "wandb-api-key"})
    )


def _config(run_id: str, method: str = "mgda") -> dict:
    return {
        "run_id": run_id,
        "training": {"batch_size": 64, "gradient_method": method},
        "objectives": [{"name": "QED", "alias": "QED_maximize", "direction": "maximize", "weight": 1.0}],
    }


def test_an_automation_is_accepted_and_syncs_the_project(client, syncing_worker, fake_wandb):
    fake_wandb.add_run(
        ENTITY,
        PROJECT,
        "b4ctzkk6",
        config=_config("run-000-0000042"),
        summary={
            "_step": 10,
            "train/loss": 0.25,
            "objectives/QED_maximize/raw_mean": 0.7,
            "eval/igd": float("nan"),
        },
        state="finished",
        display_name="mgda-qed",
    )
    fake_wandb.add_run(ENTITY, PROJECT, "zz9plural", config={"lr": 0.1}, state="running")

    response = post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    assert response.status_code == 202
    run = store.get_run("run-000-0000042")
    assert (run["status"], run["wandb_run_id"], run["run_name"], run["batch_size"]) == (
        "completed",
        "b4ctzkk6",
        "mgda-qed",
        64,
    )
    assert run["final_loss"] == 0.25
    assert run["objectives"][0]["raw_mean"] == 0.7
    assert store.get_run("zz9plural")["status"] == "running"
    assert inbox.get_delivery(response.json["event_id"]).status == "done"


def test_a_sync_fills_the_run_the_pipeline_launched_without_replacing_its_config(
    client, syncing_worker, fake_wandb
):
    store.insert_run("run-7", wandb_run_id="abc12345", config_dict={"training": {"batch_size": 8}})
    fake_wandb.add_run(
        ENTITY,
        PROJECT,
        "abc12345",
        config={"training": {"batch_size": 999}},
        summary={"_step": 3},
        state="crashed",
    )

    post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    run = store.get_run("run-7")
    assert (run["status"], run["batch_size"], run["total_training_steps"]) == ("crashed", 8, 3)
    assert store.get_run("abc12345") is None


def test_the_next_sync_asks_only_for_runs_updated_since_the_last_one_minus_the_overlap(
    client, syncing_worker, fake_wandb
):
    old = datetime.now(UTC) - timedelta(days=3)
    fake_wandb.add_run(
        ENTITY, PROJECT, "oldrun01", config={}, created_at=old, updated_at=old, state="finished"
    )
    post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()
    fake_wandb.add_run(ENTITY, PROJECT, "newrun02", config={}, state="running")

    post_wandb(client, fixture("wandb", "run_metric__threshold"))
    syncing_worker.run_once()

    assert store.get_run("newrun02")["status"] == "running"
    filters = [r["variables"].get("filters") for r in fake_wandb.requests]
    assert filters[0] in (None, "{}")
    assert "heartbeatAt" in filters[-1]


def test_the_same_payload_while_the_first_waits_for_its_sync_is_a_duplicate(client):
    first = post_wandb(client, fixture("wandb", "run_state__finished"))
    second = post_wandb(client, fixture("wandb", "run_state__finished"))

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json == {"status": "duplicate", "event_id": first.json["event_id"]}


def test_the_same_payload_after_the_first_was_synced_syncs_again(client, syncing_worker, fake_wandb):
    fake_wandb.add_run(ENTITY, PROJECT, "first001", config={}, state="finished")
    first = post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()
    # Another run of the project changes state: W&B sends the very same body.
    fake_wandb.add_run(ENTITY, PROJECT, "second01", config={}, state="crashed")
    second = post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    assert second.status_code == 202
    assert second.json["event_id"] != first.json["event_id"]
    assert inbox.get_delivery(first.json["event_id"]).status == "done"
    assert inbox.get_delivery(second.json["event_id"]).status == "done"
    assert store.get_run("second01")["status"] == "crashed"


def test_the_same_payload_after_the_first_went_dead_is_stored_to_sync_again(client, settings):
    first = post_wandb(client, fixture("wandb", "run_state__finished"))
    Worker(settings.model_copy(update={"worker_max_attempts": 1})).run_once()
    assert inbox.get_delivery(first.json["event_id"]).status == "dead"

    second = post_wandb(client, fixture("wandb", "run_state__finished"))
    third = post_wandb(client, fixture("wandb", "run_state__finished"))

    assert second.status_code == 202
    assert second.json["event_id"] != first.json["event_id"]
    assert third.json == {"status": "duplicate", "event_id": second.json["event_id"]}
    assert inbox.get_delivery(first.json["event_id"]).status == "dead"


def test_a_refused_payload_sent_again_is_refused_again(client):
    payload = fixture_json("wandb", "run_state__finished")
    del payload["project_name"]

    first = post_wandb(client, payload)
    again = post_wandb(client, payload)

    assert first.status_code == 422
    assert (again.status_code, again.json) == (422, first.json)


def test_a_payload_refused_before_a_fix_of_the_schema_is_stored_anew_once_it_validates(client):
    payload = fixture("wandb", "run_state__finished")
    refused = inbox.record_delivery(
        "wandb", "invalid", f"body:{body_hash(payload)}", payload, {}, "invalid", "{}"
    )[0]

    again = post_wandb(client, payload)

    assert again.status_code == 202
    assert again.json["event_id"] != refused
    assert inbox.get_delivery(refused).status == "invalid"


def test_webhooks_without_an_api_key_to_sync_with_are_warned_about_at_start(settings, caplog):
    from ingest import create_app

    create_app(settings)
    create_app(settings.model_copy(update={"wandb_api_key": "wandb-api-key"}))

    assert [r.message for r in caplog.records if "WANDB_API_KEY" in r.message] == [
        "config.unset WANDB_API_KEY: W&B webhooks are stored but their syncs fail until dead"
    ]


def test_a_sync_that_fails_is_retried_later(client, settings, fake_wandb):
    fake_wandb.fail_next(20, status=500)
    impatient = Context(
        settings, wandb_client=lambda: WandbClient(fake_wandb.url, "wandb-api-key", sleep=lambda _: None)
    )

    response = post_wandb(client, fixture("wandb", "run_state__finished"))
    Worker(settings, impatient).run_once()

    delivery = inbox.get_delivery(response.json["event_id"])
    assert delivery.status == "failed"
    assert "WandbApiError" in delivery.last_error


@pytest.mark.parametrize(
    ("token", "secret", "reason"),
    [
        ("wrong", "wandb-secret-for-tests", "bad_token"),
        ("wandb-token-for-tests", "wrong", "bad_signature"),
        (None, "wandb-secret-for-tests", "missing_token"),
        ("wandb-token-for-tests", None, "missing_signature"),
    ],
)
def test_each_configured_credential_must_match(client, token, secret, reason):
    response = post_wandb(client, fixture("wandb", "run_state__finished"), token=token, secret=secret)

    assert response.status_code == 401
    assert response.json["error"] == reason


def test_a_token_alone_is_enough_when_only_a_token_is_configured(settings, sns_signer):
    from ingest import create_app

    client = create_app(settings.model_copy(update={"wandb_webhook_secret": None})).test_client()

    assert post_wandb(client, fixture("wandb", "run_state__finished"), secret=None).status_code == 202


def test_a_payload_without_a_project_is_kept_as_invalid_and_answered_422(client):
    payload = fixture_json("wandb", "run_state__finished")
    del payload["project_name"]

    response = post_wandb(client, payload)

    assert response.status_code == 422
    assert inbox.get_delivery(response.json["event_id"]).status == "invalid"


def test_a_sync_without_an_api_key_fails_with_a_clear_error(client, worker):
    response = post_wandb(client, fixture("wandb", "run_state__finished"))
    worker.run_once()

    assert "WANDB_API_KEY" in inbox.get_delivery(response.json["event_id"]).last_error


def test_the_worker_reconciles_configured_projects_periodically(settings, fake_wandb):
    fake_wandb.add_run(ENTITY, PROJECT, "quiet001", config={}, state="finished")
    worker = Worker(
        settings.model_copy(
            update={
                "wandb_base_url": fake_wandb.url,
                "wandb_api_key": "wandb-api-key",
                "wandb_projects": [f"{ENTITY}/{PROJECT}"],
            }
        )
    )

    worker.reconcile()
    worker.reconcile()

    assert store.get_run("quiet001")["status"] == "completed"
    assert len(fake_wandb.requests) == 1
