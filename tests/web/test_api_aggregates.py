"""/api/objectives, /api/compare, /api/pareto and /api/stats: computed over every matching run."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

import store
from store.models import TrainingRun
from store.pareto import front
from testkit.factory import generate_runs
from tests.web.conftest import READ

RUNS = 60


@pytest.fixture
def loaded(client: FlaskClient) -> list[dict[str, Any]]:
    records = list(generate_runs(RUNS, seed=11))
    store.load_runs(records)
    return records


def get(client: FlaskClient, path: str, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def objective_rows(client: FlaskClient, *names: str, metric: str = "raw_mean") -> list[dict[str, Any]]:
    fields = ",".join(
        ["run_id", "gradient_method", "status", "config.training.batch_size"]
        + [f"objective.{n}.{metric}" for n in names]
    )
    return get(client, "/api/runs", fields=fields, limit=1000)["runs"]


def test_objectives_name_their_direction_and_number_of_runs(
    client: FlaskClient, loaded: list[dict[str, Any]]
) -> None:
    expected: Counter[str] = Counter()
    directions = {}
    for record in loaded:
        for objective in record["config"]["objectives"]:
            expected[objective["name"]] += 1
            directions[objective["name"]] = objective["direction"]
    answer = get(client, "/api/objectives")["objectives"]
    assert {o["name"]: o["runs"] for o in answer} == dict(expected)
    assert {o["name"]: o["direction"] for o in answer} == directions


@pytest.mark.parametrize("by", ["gradient_method", "status", "config.training.batch_size"])
def test_compare_matches_pythons_statistics_in_every_group(
    client: FlaskClient, loaded: list[dict[str, Any]], by: str
) -> None:
    rows = objective_rows(client, "DRD5_activity")
    column = {"config.training.batch_size": "config.training.batch_size"}.get(by, by)
    groups: dict[Any, list[tuple[float, str]]] = defaultdict(list)
    for row in rows:
        if row["objective.DRD5_activity.raw_mean"] is not None:
            groups[row[column]].append((row["objective.DRD5_activity.raw_mean"], row["run_id"]))
    answer = get(client, "/api/compare", objective="DRD5_activity", by=by)
    assert answer["direction"] == "maximize"
    assert {g["key"] for g in answer["groups"]} == set(groups)
    for group in answer["groups"]:
        pairs = groups[group["key"]]
        values = [v for v, _ in pairs]
        assert group["n"] == len(values)
        assert group["mean"] == pytest.approx(statistics.fmean(values))
        assert group["min"] == min(values) and group["max"] == max(values)
        assert group["median"] == pytest.approx(statistics.median(values))
        if len(values) > 1:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
            assert (group["q1"], group["q3"]) == (pytest.approx(q1), pytest.approx(q3))
            assert group["std"] == pytest.approx(statistics.stdev(values))
        else:
            assert group["q1"] == group["q3"] == values[0] and group["std"] is None
        assert group["best"] == max(values)
        assert group["best_run_id"] == min(run_id for v, run_id in pairs if v == max(values))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12), minimize=st.booleans()
)
def test_compare_quartiles_and_best_of_any_values(
    client: FlaskClient, values: list[float], minimize: bool
) -> None:
    name = f"hyp_{len(values)}_{abs(hash(tuple(values))) % 10**9}_{minimize}"
    for i, value in enumerate(values):
        run_id = f"{name}-{i:02d}"
        store.insert_run(run_id, gradient_method="m")
        store.insert_objective(run_id, name, direction="minimize" if minimize else "maximize")
        store.update_objective_metric(run_id, name, "raw_mean", value)
    group = get(client, "/api/compare", objective=name)["groups"][0]
    assert group["n"] == len(values)
    assert group["median"] == pytest.approx(statistics.median(values), abs=1e-6)
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        assert group["q1"] == pytest.approx(q1, abs=1e-6) and group["q3"] == pytest.approx(q3, abs=1e-6)
    best = min(values) if minimize else max(values)
    assert group["best"] == best
    assert group["best_run_id"] == f"{name}-{values.index(best):02d}"


def test_compare_follows_a_minimized_objectives_direction(
    client: FlaskClient, loaded: list[dict[str, Any]]
) -> None:
    answer = get(client, "/api/compare", objective="SA_score")
    assert answer["direction"] == "minimize"
    for group in answer["groups"]:
        assert group["best"] == group["min"]


def test_compare_of_an_objective_no_run_has_is_empty(
    client: FlaskClient, loaded: list[dict[str, Any]]
) -> None:
    assert get(client, "/api/compare", objective="nothing")["groups"] == []


def dominated(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Tell whether b dominates a (every objective maximised)."""
    return all(y >= x for x, y in zip(a, b, strict=True)) and any(y > x for x, y in zip(a, b, strict=True))


def brute_force_front(points: list[tuple[float, ...]]) -> list[int]:
    return [i for i, p in enumerate(points) if not any(dominated(p, q) for q in points)]


@settings(max_examples=400, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda k: st.lists(
            st.tuples(*[st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(-10, 10) for _ in range(k)]),
            max_size=40,
        )
    )
)
def test_the_front_is_the_brute_force_non_dominated_set(points: list[tuple[float, ...]]) -> None:
    assert front(points) == brute_force_front(points)


def test_a_difference_too_small_for_the_sum_still_dominates() -> None:
    # Both sums round to 0.5: ordering by the sum alone put the dominated point first.
    points = [(0.0, 0.5, 0.0, 0.0), (0.0, 0.5, 2.369449387107752e-175, 0.0)]
    assert front(points) == [1]


@pytest.mark.parametrize(
    "objectives",
    [
        "DRD5_activity,COMT_activity",
        "DRD5_activity:max,SA_score,COMT_activity:min",
        "DRD5_activity,COMT_activity,SA_score,QED",
    ],
)
def test_pareto_over_the_api_is_the_brute_force_front(
    client: FlaskClient, loaded: list[dict[str, Any]], objectives: str
) -> None:
    specs = [item.partition(":") for item in objectives.split(",")]
    names = [name for name, _, _ in specs]
    own = {o["name"]: o["direction"] for o in get(client, "/api/objectives")["objectives"]}
    signs = [1.0 if (suffix or own[name][:3]) == "max" else -1.0 for name, _, suffix in specs]
    rows = [
        r
        for r in objective_rows(client, *names)
        if all(r[f"objective.{n}.raw_mean"] is not None for n in names)
    ]
    points = [
        tuple(s * r[f"objective.{n}.raw_mean"] for s, n in zip(signs, names, strict=True)) for r in rows
    ]
    expected = sorted(rows[i]["run_id"] for i in brute_force_front(points))
    answer = get(client, "/api/pareto", objectives=objectives)
    assert answer["considered"] == len(rows)
    assert [m["run_id"] for m in answer["front"]] == expected
    assert [o["direction"] for o in answer["objectives"]] == [
        "maximize" if s > 0 else "minimize" for s in signs
    ]
    by_id = {r["run_id"]: r for r in rows}
    for member in answer["front"]:
        row = by_id[member["run_id"]]
        assert member["values"] == {n: row[f"objective.{n}.raw_mean"] for n in names}
        assert (member["gradient_method"], member["status"]) == (row["gradient_method"], row["status"])


def test_pareto_with_points_gives_every_considered_run_column_by_column(
    client: FlaskClient, loaded: list[dict[str, Any]]
) -> None:
    names = ["DRD5_activity", "COMT_activity", "QED"]
    rows = [
        r
        for r in objective_rows(client, *names)
        if all(r[f"objective.{n}.raw_mean"] is not None for n in names)
    ]

    answer = get(client, "/api/pareto", objectives=",".join(names), points="true", filter="batch_size >= 0")

    points = answer["points"]
    assert answer["considered"] == len(points["run_id"]) == len(rows) > 0
    by_id = {r["run_id"]: r for r in rows}
    for i, run_id in enumerate(points["run_id"]):
        assert points["gradient_method"][i] == by_id[run_id]["gradient_method"]
        assert {n: points["values"][n][i] for n in names} == {
            n: by_id[run_id][f"objective.{n}.raw_mean"] for n in names
        }
    assert "points" not in get(client, "/api/pareto", objectives=",".join(names))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "objectives"),
        ({"objectives": "a,b", "points": "yes"}, "points: must be true or false"),
        ({"objectives": "DRD5_activity"}, "2 to 6"),
        ({"objectives": "a,b,c,d,e,f,g"}, "2 to 6"),
        ({"objectives": "a:up,b"}, ":max, :min"),
        ({"objectives": "a,a"}, "once"),
        ({"objectives": "a,b", "metric": "top"}, "metric"),
    ],
)
def test_bad_pareto_parameters_get_400(client: FlaskClient, params: dict[str, str], message: str) -> None:
    response = client.get("/api/pareto", query_string=params, headers=READ)
    assert response.status_code == 400
    assert message in response.get_json()["message"]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/compare", {}, "objective"),
        ("/api/compare", {"objective": "x", "metric": "best"}, "metric"),
        ("/api/compare", {"objective": "x", "by": "gradientmethod"}, "did you mean 'gradient_method'"),
        ("/api/compare", {"objective": "x", "by": "objective.x.raw_mean"}, "cannot group"),
        ("/api/stats", {"by": "nope"}, "unknown field"),
    ],
)
def test_bad_aggregate_parameters_get_400(
    client: FlaskClient, path: str, params: dict[str, str], message: str
) -> None:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == 400
    assert message in response.get_json()["message"]


@pytest.mark.parametrize("by", ["gradient_method", "config.training.batch_size"])
def test_stats_count_runs_by_status_per_group_and_per_day(
    client: FlaskClient, loaded: list[dict[str, Any]], by: str
) -> None:
    rows = get(client, "/api/runs", fields=f"run_id,status,created_at,{by}", limit=1000)["runs"]
    answer = get(client, "/api/stats", by=by)
    assert answer["total"] == RUNS
    expected: dict[Any, Counter[str]] = defaultdict(Counter)
    for row in rows:
        expected[row[by]][row["status"]] += 1
    assert {g["key"] for g in answer["groups"]} == set(expected)
    for group in answer["groups"]:
        counts = expected[group["key"]]
        assert group["runs"] == sum(counts.values())
        assert [group[s] for s in ("completed", "crashed", "failed", "running")] == [
            counts[s] for s in ("completed", "crashed", "failed", "running")
        ]
        assert group["crash_rate"] == pytest.approx(counts["crashed"] / group["runs"])
    days = Counter(row["created_at"][:10] for row in rows)
    assert {d["day"]: d["runs"] for d in answer["per_day"]} == dict(days)


def test_stats_per_day_splits_at_utc_midnight(client: FlaskClient, loaded: list[dict[str, Any]]) -> None:
    moved = {
        loaded[0]["run_id"]: datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        loaded[1]["run_id"]: datetime(2026, 1, 2, tzinfo=UTC),
        loaded[2]["run_id"]: datetime(2026, 1, 2, 0, 0, 0, 1, tzinfo=UTC),
        loaded[3]["run_id"]: datetime(1999, 12, 31, 12, tzinfo=UTC),
    }
    table = TrainingRun.__table__
    with store.get_engine().begin() as connection:
        for run_id, created_at in moved.items():
            connection.execute(update(table).where(table.c.run_id == run_id).values(created_at=created_at))
    per_day = {d["day"]: d["runs"] for d in get(client, "/api/stats")["per_day"]}
    assert per_day["2026-01-01"] == 1
    assert per_day["2026-01-02"] == 2
    assert per_day["1999-12-31"] == 1
    assert sum(per_day.values()) == RUNS
