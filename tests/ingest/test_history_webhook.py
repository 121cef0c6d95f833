"""Each run.progress event adds a point to its run's history, through the real app and worker.

The history is bounded, and the points it keeps depend on the set of events only: not on
duplicates, nor on the order they arrive in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

import store
from ingest import create_app
from ingest.settings import Settings
from ingest.worker import Worker
from store.models import Base
from tests.webhooks import pipeline_event, post_pipeline

RUN_ID = "run-history-1"
MAX_POINTS = 6


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def empty_database() -> None:
    with store.get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def progress(step: int, variant: int) -> bytes:
    """A progress event; two variants of one step disagree on train/loss and agree on eval/acc."""
    metrics: dict[str, Any] = {"train/loss": step + variant / 10, "eval/acc": step % 7, "lr": 0.1}
    minute, second = divmod(step % 3600, 60)
    stamp = f"2026-11-20T10:{minute % 60:02d}:{second:02d}Z"
    return json.dumps(pipeline_event("run.progress", RUN_ID, stamp, step=step, metrics=metrics)).encode()


def expected_steps(steps: set[int], max_points: int) -> list[int]:
    """The first step of each bucket and the latest, at the narrowest power-of-two stride that fits."""
    stride = 1
    while True:
        firsts: dict[int, int] = {}
        for step in sorted(steps):
            firsts.setdefault(step // stride, step)
        kept = set(firsts.values()) | {max(steps)}
        if len(kept) <= max_points:
            return sorted(kept)
        stride *= 2


def test_progress_shows_in_the_history_as_it_arrives(client, worker):
    for step in (100, 200):
        post_pipeline(client, progress(step, 0))
    drain(worker)

    history = store.get_run_history(RUN_ID)

    assert history["steps"] == [100, 200]
    assert history["series"] == {"train/loss": [100.0, 200.0], "eval/acc": [2, 4]}
    assert history["last_step"] == 200
    assert history["times"][0] == datetime(2026, 11, 20, 10, 1, 40, tzinfo=UTC).timestamp()


def test_history_settings_choose_the_keys_kept(settings, sns_signer, client):
    configured = settings.model_copy(update={"history_keys": ["lr"]})
    app = create_app(configured, fetch_pem=sns_signer.fetch_pem)
    post_pipeline(app.test_client(), progress(5, 0))
    drain(Worker(configured))

    assert store.get_run_history(RUN_ID)["series"] == {"lr": [0.1]}


def test_history_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("HISTORY_KEYS", "train/*, loss")
    monkeypatch.setenv("HISTORY_MAX_POINTS", "50")

    policy = Settings().history_policy()

    assert (policy.keys, policy.max_keys, policy.max_points) == (("train/*", "loss"), 64, 50)


def test_thinning_is_bounded_and_independent_of_duplicates_and_order(settings, sns_signer):
    configured = settings.model_copy(update={"history_max_points": MAX_POINTS, "worker_batch_size": 3})
    client = create_app(configured, fetch_pem=sns_signer.fetch_pem).test_client()
    worker = Worker(configured)

    @given(st.data())
    @examples(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(data: st.DataObject) -> None:
        empty_database()
        events = data.draw(
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 1)), min_size=1, max_size=16, unique=True)
        )
        copies = data.draw(st.lists(st.integers(1, 2), min_size=len(events), max_size=len(events)))
        deliveries = data.draw(
            st.permutations([e for e, n in zip(events, copies, strict=True) for _ in range(n)])
        )
        process_after = data.draw(st.lists(st.booleans(), min_size=len(deliveries), max_size=len(deliveries)))
        for (step, variant), process in zip(deliveries, process_after, strict=True):
            assert post_pipeline(client, progress(step, variant)).status_code in (200, 202)
            if process:
                worker.run_once()
        drain(worker)
        history = store.get_run_history(RUN_ID)

        steps = {step for step, _ in events}
        assert history["steps"] == expected_steps(steps, MAX_POINTS)
        assert len(history["steps"]) >= min(len(steps), MAX_POINTS // 4)
        # At a step both variants reported, the same one is kept whichever came first.
        variants = {step: max(v for s, v in events if s == step) for step in steps}
        assert history["series"]["train/loss"] == [s + variants[s] / 10 for s in history["steps"]]
        assert history["series"]["eval/acc"] == [s % 7 for s in history["steps"]]
        assert history["last_step"] == max(steps)

    check()
