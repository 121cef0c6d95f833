"""Each run's metric history through the store API: what is kept, how it reads back, what bounds it."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

import store
from store.history import HistoryPolicy
from store.models import Base, RunHistory, RunHistoryChunk, TrainingRun

SMALL = HistoryPolicy(max_points=8)


def test_a_run_without_history_has_empty_series_and_an_unknown_run_has_none(db):
    store.insert_run("run-a", config_dict={})

    assert store.get_run_history("run-a", keys=["train/loss"]) == {
        "run_id": "run-a",
        "steps": [],
        "times": [],
        "series": {"train/loss": []},
        "last_step": None,
        "status": "launched",
        "stalled": False,
    }
    assert store.get_run_history("nobody") is None


def test_progress_adds_points_of_the_kept_keys_with_their_times(db):
    when = datetime(2026, 11, 20, 10, tzinfo=UTC)
    store.record_progress("run-a", 10, {"train/loss": 2.5, "eval/acc": 0.5, "lr": 0.1}, time=when)
    store.record_progress("run-a", 20, {"train/loss": 1.5, "reward_mean": 3}, time=when)

    history = store.get_run_history("run-a")

    assert history == {
        "run_id": "run-a",
        "steps": [10, 20],
        "times": [when.timestamp(), when.timestamp()],
        "series": {"train/loss": [2.5, 1.5], "eval/acc": [0.5, None], "reward_mean": [None, 3]},
        "last_step": 20,
        "status": "running",
        "stalled": False,
    }
    assert store.get_run("run-a")["progress_json"] == {"train/loss": 1.5, "reward_mean": 3}


def test_values_come_back_exactly_as_they_were_reported(db):
    odd = {
        "train/nan": math.nan,
        "train/inf": math.inf,
        "train/-inf": -math.inf,
        "train/-0": -0.0,
        "train/int": 7,
        "train/huge": 2**70,
        "train/float": 1e300,
        "train/flag": True,
        "train/text": "diverged",
        "train/null": None,
        "train/table": {"a": [1, 2.5]},
    }
    store.record_progress("run-a", 1, odd)

    series = store.get_run_history("run-a")["series"]

    assert math.isnan(series.pop("train/nan")[0])
    expected = {key: [value] for key, value in odd.items() if key != "train/nan"}
    assert series == expected
    assert math.copysign(1.0, series["train/-0"][0]) == -1.0
    assert type(series["train/int"][0]) is int and type(series["train/flag"][0]) is bool


def test_keys_are_chosen_by_glob_patterns_and_capped_with_a_warning(db):
    policy = HistoryPolicy(keys=("loss", "acc/*"), max_keys=2)
    store.record_progress("run-a", 1, {"loss": 1.0, "acc/a": 0.1, "acc/b": 0.2, "other": 5}, history=policy)

    history = store.get_run_history("run-a")

    assert list(history["series"]) == ["loss", "acc/a"]
    assert "acc/b" in store.get_run("run-a")["warnings"]["history"]


def test_a_point_without_any_kept_key_adds_nothing(db):
    store.record_progress("run-a", 5, {"lr": 0.1})

    assert store.get_run_history("run-a")["steps"] == []


def test_since_step_and_max_points_thin_the_answer_keeping_first_and_last(db):
    for step in range(0, 100, 10):
        store.record_progress("run-a", step, {"train/loss": float(step)})

    assert store.get_run_history("run-a", since_step=60)["steps"] == [70, 80, 90]
    assert store.get_run_history("run-a", max_points=4)["steps"] == [0, 30, 60, 90]
    assert store.get_run_history("run-a", keys=["train/loss"], since_step=90)["series"] == {"train/loss": []}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: store.get_run_history("run-a", keys="train/loss"), "keys"),
        (lambda: store.get_run_history("run-a", max_points=0), "max_points"),
        (lambda: store.get_run_history("run-a", since_step="5"), "since_step"),
        (lambda: store.get_history(None, "train/loss", max_runs=0), "max_runs"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(db, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_history_stays_within_max_points_and_keeps_first_and_latest(db):
    for step in range(1000):
        store.record_progress("run-a", step, {"train/loss": 1.0 / (step + 1)}, history=SMALL)

    steps = store.get_run_history("run-a")["steps"]

    assert 2 <= len(steps) <= 8
    assert steps[0] == 0 and steps[-1] == 999
    assert steps == sorted(steps)


def test_an_overlay_reads_one_key_across_the_runs_a_filter_matches_newest_first(db):
    for index, method in enumerate(["mgda", "pcgrad", "mgda"]):
        run_id = f"run-{index}"
        store.insert_run(
            run_id,
            config_dict={"gradient_method": method},
            created_at=datetime(2026, 11, 20 + index, tzinfo=UTC),
        )
        for step in (1, 2):
            store.record_progress(run_id, step, {"train/loss": step * 10.0 + index})
    store.record_progress("run-0", 3, {"eval/acc": 0.5})

    curves = store.get_history("gradient_method = 'mgda'", "train/loss")

    assert [(c["run_id"], c["gradient_method"], c["status"]) for c in curves] == [
        ("run-2", "mgda", "running"),
        ("run-0", "mgda", "running"),
    ]
    assert [(c["steps"], c["values"]) for c in curves] == [([1, 2], [12.0, 22.0]), ([1, 2], [10.0, 20.0])]
    assert store.get_history(None, "train/loss", max_runs=1)[0]["run_id"] == "run-2"
    assert store.get_history(None, "nothing/here")[0]["steps"] == []
    with pytest.raises(store.FilterError):
        store.get_history("gradient_method ==", "train/loss")


def test_deleting_a_run_deletes_its_history(db):
    for step in range(100):
        store.record_progress("run-a", step, {"train/loss": 1.0})
    store.record_progress("run-b", 1, {"train/loss": 1.0})

    with store.get_engine().begin() as connection:
        connection.execute(delete(TrainingRun).where(TrainingRun.run_id == "run-a"))
        left = {
            table.__table__.name: connection.scalar(select(func.count(func.distinct(table.run_id))))
            for table in (RunHistory, RunHistoryChunk)
        }

    assert left == {"run_histories": 1, "run_history_chunks": 1}
    assert store.get_run_history("run-a") is None


def kept_steps(steps: set[int], max_points: int) -> list[int]:
    """The first step of each bucket and the latest, at the narrowest power-of-two stride that fits."""
    stride = 1
    while True:
        firsts: dict[int, int] = {}
        for step in sorted(steps):
            firsts.setdefault(step // stride, step)
        kept = sorted(set(firsts.values()) | {max(steps)})
        if len(kept) <= max_points:
            return kept
        stride *= 2


@given(st.data())
@examples(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_units_of_work_over_many_runs_keep_the_points_of_the_set_of_steps(db, data):
    empty_database()
    policy = HistoryPolicy(max_points=data.draw(st.sampled_from([10, 40, 200])))
    runs = {
        f"run-{i}": data.draw(st.sets(st.integers(0, 5000), min_size=1, max_size=150), label=f"run-{i}")
        for i in range(3)
    }
    calls = [(run_id, step) for run_id, steps in runs.items() for step in steps for _ in range(2)]
    calls = data.draw(st.permutations(calls))
    while calls:
        size = data.draw(st.integers(1, 60))
        batch, calls = calls[:size], calls[size:]
        with store.unit_of_work({run_id for run_id, _ in batch}):
            for run_id, step in batch:
                store.record_progress(
                    run_id, step, {"train/loss": step / 7, "train/step": step}, history=policy
                )

    for run_id, steps in runs.items():
        history = store.get_run_history(run_id)
        expected = kept_steps(steps, policy.max_points)
        assert history["steps"] == expected
        assert history["series"] == {"train/loss": [s / 7 for s in expected], "train/step": expected}


def empty_database() -> None:
    with store.get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
