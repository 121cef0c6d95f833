"""A W&B sync reads a sample of each run's history when it grew, against a fake W&B API."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import store
from ingest.wandb_api import WandbApiError, WandbClient
from ingest.worker import Worker
from tests.fake_wandb import FakeWandb
from tests.webhooks import fixture, pipeline_event, post_pipeline, post_wandb

ENTITY, PROJECT = "mango-lab", "mango-moo"
RUN_ID = "run-000-0000042"
T0 = 1_795_000_000.0


@pytest.fixture
def fake_wandb() -> Iterator[FakeWandb]:
    with FakeWandb(api_key="wandb-api-key") as fake:
        yield fake


@pytest.fixture
def syncing_worker(settings, fake_wandb) -> Worker:
    return Worker(
        settings.model_copy(update={"wandb_base_url": fake_wandb.url, "wandb_api_key": "wandb-api-key"})
    )


def rows(steps: range) -> list[dict]:
    """History rows as W&B logs them: the loss every step, the eval every tenth, a NaN at step 5."""
    history = []
    for step in steps:
        row = {"_step": step, "_timestamp": T0 + step, "_runtime": step, "train/loss": 1.0 / (step + 1)}
        if step == 5:
            row["train/loss"] = math.nan
        if step % 10 == 0:
            row["eval/reward"] = step * 2
        row["system/gpu"] = 50.0
        history.append(row)
    return history


def add_run(fake: FakeWandb, steps: range, heartbeat: datetime | None = None) -> None:
    fake.add_run(
        ENTITY,
        PROJECT,
        "b4ctzkk6",
        config={"run_id": RUN_ID},
        state="running",
        history=rows(steps),
        updated_at=heartbeat,
    )


def sampled_history_requests(fake: FakeWandb) -> list[dict]:
    return [r for r in fake.requests if "sampledHistory" in r["query"]]


def test_a_sync_keeps_a_sample_of_the_history_of_the_kept_keys(client, syncing_worker, fake_wandb):
    add_run(fake_wandb, range(30))

    post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    history = store.get_run_history(RUN_ID)
    assert history["steps"] == list(range(30))
    assert set(history["series"]) == {"eval/reward", "train/loss"}
    assert math.isnan(history["series"]["train/loss"][5])
    assert history["series"]["train/loss"][:2] == [1.0, 0.5]
    assert history["series"]["eval/reward"][:11] == [0] + [None] * 9 + [20]
    assert history["times"][3] == T0 + 3
    (request,) = sampled_history_requests(fake_wandb)
    assert request["variables"]["name"] == "b4ctzkk6"
    assert len(request["variables"]["specs"]) == 2


def test_a_sync_reads_the_history_again_only_once_it_grew(client, syncing_worker, fake_wandb):
    add_run(fake_wandb, range(10))
    post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    post_wandb(client, fixture("wandb", "run_metric__threshold"))
    syncing_worker.run_once()
    assert len(sampled_history_requests(fake_wandb)) == 1

    add_run(fake_wandb, range(20), heartbeat=datetime.now(UTC) + timedelta(minutes=1))
    post_wandb(client, fixture("wandb", "run_state__finished"))
    syncing_worker.run_once()

    assert len(sampled_history_requests(fake_wandb)) == 2
    assert store.get_run_history(RUN_ID)["steps"] == list(range(20))


def test_history_from_w_and_b_and_from_the_pipeline_make_one_history(client, syncing_worker, fake_wandb):
    add_run(fake_wandb, range(0, 30, 10))
    post_pipeline(client, pipeline_event("run.progress", RUN_ID, step=15, metrics={"train/loss": 0.07}))
    post_wandb(client, fixture("wandb", "run_state__finished"))
    while syncing_worker.run_once():
        pass

    history = store.get_run_history(RUN_ID, keys=["train/loss"])

    assert history["steps"] == [0, 10, 15, 20]
    assert history["series"]["train/loss"][2] == 0.07


def test_a_sample_asks_one_spec_per_key_and_merges_the_rows_by_step(fake_wandb):
    fake_wandb.api_key = "key"
    add_run(fake_wandb, range(100))

    with WandbClient(fake_wandb.url, "key") as client:
        sample = client.sampled_history(ENTITY, PROJECT, "b4ctzkk6", ["eval/reward", "train/loss"], 8)

    steps = [row["_step"] for row in sample]
    assert steps[0] == 0 and steps[-1] == 99
    assert 8 <= len(steps) <= 16
    assert all("train/loss" in row or "eval/reward" in row for row in sample)


def test_a_missing_run_is_reported(fake_wandb):
    fake_wandb.api_key = "key"
    add_run(fake_wandb, range(3))

    with WandbClient(fake_wandb.url, "key") as client, pytest.raises(WandbApiError, match="not found"):
        client.sampled_history(ENTITY, PROJECT, "nobody00", ["train/loss"], 8)
