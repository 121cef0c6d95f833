"""The W&B API client, run against a fake W&B GraphQL server over real HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ingest.wandb_api import WandbApiError, WandbClient, parse_timestamp
from tests.fake_wandb import FakeWandb

ENTITY, PROJECT = "acme", "vision"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeWandb]:
    with FakeWandb() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: FakeWandb, sleeps: list[float]) -> Iterator[WandbClient]:
    with WandbClient(fake.url, api_key=fake.api_key, per_page=2, sleep=sleeps.append) as wandb:
        yield wandb


def test_config_is_unwrapped_and_internal_keys_are_dropped(fake: FakeWandb, client: WandbClient) -> None:
    config = {"lr": 0.001, "model": {"layers": 4, "act": "gelu"}, "wrapper": {"value": 1}}
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config=config)

    [run] = client.runs(ENTITY, PROJECT)

    assert run.config == config


def test_run_fields_are_read_from_the_node(fake: FakeWandb, client: WandbClient) -> None:
    tags = ("baseline", "gpu")
    fake.add_run(
        ENTITY,
        PROJECT,
        "1jx1ud",
        config={},
        state="crashed",
        display_name="eager-fox",
        tags=tags,
        commit="abc",
    )

    [run] = client.runs(ENTITY, PROJECT)

    assert (run.entity, run.project, run.run_id, run.display_name) == (ENTITY, PROJECT, "1jx1ud", "eager-fox")
    assert (run.state, run.tags, run.commit, run.user) == ("crashed", tags, "abc", ENTITY)


def test_summary_nan_and_infinity_tokens_parse_as_floats(fake: FakeWandb, client: WandbClient) -> None:
    summary = {"loss": 0.12, "val/loss": math.nan, "grad": math.inf, "floor": -math.inf, "acc": {"max": 0.9}}
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config={}, summary=summary)

    [run] = client.runs(ENTITY, PROJECT)

    assert math.isnan(run.summary["val/loss"])
    assert (run.summary["grad"], run.summary["floor"]) == (math.inf, -math.inf)
    assert (run.summary["loss"], run.summary["acc"]) == (0.12, {"max": 0.9})


def test_runs_are_paged_oldest_first_until_the_last_page(fake: FakeWandb, client: WandbClient) -> None:
    for minute in (4, 0, 3, 1, 2):
        fake.add_run(ENTITY, PROJECT, f"run{minute}", config={}, created_at=T0 + timedelta(minutes=minute))

    runs = list(client.runs(ENTITY, PROJECT))

    assert [run.run_id for run in runs] == ["run0", "run1", "run2", "run3", "run4"]
    variables = [request["variables"] for request in fake.requests]
    assert [v["perPage"] for v in variables] == [2, 2, 2]
    assert variables[0]["cursor"] is None
    assert len({v["cursor"] for v in variables}) == 3
    assert {v["order"] for v in variables} == {"+created_at"}


def test_no_updated_since_sends_an_empty_filter(fake: FakeWandb, client: WandbClient) -> None:
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config={})

    list(client.runs(ENTITY, PROJECT))

    assert json.loads(fake.requests[0]["variables"]["filters"]) == {}


def test_updated_since_is_sent_as_a_filter_and_honoured(fake: FakeWandb, client: WandbClient) -> None:
    old = T0 - timedelta(days=1)
    fake.add_run(ENTITY, PROJECT, "stale", config={}, created_at=old, updated_at=T0 - timedelta(hours=1))
    fake.add_run(ENTITY, PROJECT, "edge", config={}, created_at=old, updated_at=T0)
    fake.add_run(ENTITY, PROJECT, "resumed", config={}, created_at=old, updated_at=T0 + timedelta(hours=1))
    fake.add_run(ENTITY, PROJECT, "new", config={}, created_at=T0 + timedelta(minutes=5))

    runs = list(client.runs(ENTITY, PROJECT, updated_since=T0 + timedelta(milliseconds=500)))

    assert sorted(run.run_id for run in runs) == ["edge", "new", "resumed"]
    stamp = {"$gte": "2024-05-01T12:00:00Z"}
    expected = {"$or": [{"createdAt": stamp}, {"heartbeatAt": stamp}]}
    assert json.loads(fake.requests[0]["variables"]["filters"]) == expected


def test_a_naive_updated_since_is_refused(client: WandbClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(client.runs(ENTITY, PROJECT, updated_since=datetime(2024, 5, 1, 12, 0)))


def test_timestamps_are_aware_utc(fake: FakeWandb, client: WandbClient) -> None:
    in_paris = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    fake.add_run(
        ENTITY, PROJECT, "1jx1ud12", config={}, created_at=in_paris, updated_at=T0 + timedelta(hours=2)
    )

    [run] = client.runs(ENTITY, PROJECT)

    assert run.created_at == T0 and run.created_at.tzinfo is UTC
    assert run.heartbeat_at == run.updated_at == T0 + timedelta(hours=2)
    assert run.updated_at is not None and run.updated_at.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T12:00:00", "2024-05-01T12:00:00Z", "2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.000Z"],
)
def test_every_timestamp_form_w_and_b_sends_parses_to_aware_utc(text: str) -> None:
    stamp = parse_timestamp(text)
    assert stamp == T0 and stamp is not None and stamp.tzinfo is UTC


def test_the_api_key_is_sent_as_basic_auth(fake: FakeWandb, client: WandbClient) -> None:
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config={})

    assert [run.run_id for run in client.runs(ENTITY, PROJECT)] == ["1jx1ud12"]


def test_a_wrong_api_key_is_refused_without_retrying(fake: FakeWandb, sleeps: list[float]) -> None:
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config={})

    with WandbClient(fake.url, api_key="wrong", sleep=sleeps.append) as wandb:
        with pytest.raises(WandbApiError, match="rejected the API key"):
            list(wandb.runs(ENTITY, PROJECT))

    assert (len(fake.requests), sleeps) == (1, [])


def test_500_and_429_are_retried_with_backoff_then_succeed(
    fake: FakeWandb, client: WandbClient, sleeps: list[float]
) -> None:
    fake.add_run(ENTITY, PROJECT, "1jx1ud12", config={})
    fake.fail_next(2, status=500)
    fake.fail_next(1, status=429)

    assert [run.run_id for run in client.runs(ENTITY, PROJECT)] == ["1jx1ud12"]
    assert len(fake.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_persistent_server_errors_give_up_with_the_status(
    fake: FakeWandb, client: WandbClient, sleeps: list[float]
) -> None:
    fake.fail_next(10, status=503)

    with pytest.raises(WandbApiError, match="HTTP 503.*5 attempts"):
        list(client.runs(ENTITY, PROJECT))

    assert len(fake.requests) == 5 and len(sleeps) == 4


def test_an_unreachable_server_is_retried_then_reported(sleeps: list[float]) -> None:
    with FakeWandb() as gone:
        url = gone.url

    with WandbClient(url, api_key="test-key", sleep=sleeps.append) as wandb:
        with pytest.raises(WandbApiError, match="unreachable"):
            list(wandb.runs(ENTITY, PROJECT))

    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_a_graphql_errors_array_raises_with_its_message(client: WandbClient) -> None:
    with pytest.raises(WandbApiError, match="GraphQL error.*project"):
        client.execute("query Viewer { viewer { username } }", {})


def test_a_missing_project_is_reported(client: WandbClient) -> None:
    with pytest.raises(WandbApiError, match="acme/nowhere not found"):
        list(client.runs(ENTITY, "nowhere"))
