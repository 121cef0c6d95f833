"""The objectives API: per-objective rows, threshold queries, comparisons and statistics."""

from __future__ import annotations

import statistics

import pytest

import store

# run_id: (gradient_method, status, {objective: raw_mean})
RUNS = {
    "m1": ("mgda", "completed", {"COMT_activity": 0.9, "DRD5_activity": 0.8, "hERG_liability": 0.1}),
    "m2": ("mgda", "completed", {"COMT_activity": 0.7, "DRD5_activity": 0.75, "hERG_liability": 0.25}),
    "m3": ("mgda", "crashed", {"COMT_activity": 0.95, "DRD5_activity": 0.9}),
    "p1": ("pcgrad", "completed", {"COMT_activity": 0.85, "DRD5_activity": 0.6, "hERG_liability": 0.05}),
    "p2": ("pcgrad", "completed", {"COMT_activity": 0.8, "DRD5_activity": 0.7}),
    "c1": ("cagrad", "completed", {"COMT_activity": 0.6, "hERG_liability": 0.2}),
}
DIRECTIONS = {"COMT_activity": "maximize", "DRD5_activity": "maximize", "hERG_liability": "minimize"}


@pytest.fixture
def runs(db):
    for run_id, (method, status, values) in RUNS.items():
        objectives = [
            {
                "name": name,
                "alias": f"{name}_{DIRECTIONS[name]}",
                "direction": DIRECTIONS[name],
                "weight": 1.0,
            }
            for name in values
        ]
        store.insert_run(run_id, config_dict={"gradient_method": method, "objectives": objectives})
        summary = {f"objectives/{name}_{DIRECTIONS[name]}/raw_mean": value for name, value in values.items()}
        summary.update(
            {
                f"objectives/{name}_{DIRECTIONS[name]}/normalized_mean": value / 2
                for name, value in values.items()
            }
        )
        store.update_run_status(run_id, status, final_metrics_json=summary)
    return db


def test_insert_objective_and_update_objective_metric(db):
    assert store.insert_objective(
        "r1", "QED", objective_alias="QED_maximize", weight=0.5, direction="maximize"
    )
    assert store.update_objective_metric("r1", "QED", "raw_mean", 0.61)
    assert store.update_objective_metric("r1", "QED", "top10_mean", 0.9)
    assert store.update_objective_metric("r1", "QED", "raw_mean", 0.61) is False

    (qed,) = store.get_run_objectives("r1")
    assert (qed["objective_alias"], qed["weight"], qed["direction"], qed["raw_mean"]) == (
        "QED_maximize",
        0.5,
        "maximize",
        0.61,
    )
    assert qed["extra_metrics_json"] == {"top10_mean": 0.9}


def test_insert_objective_twice_never_duplicates(db):
    store.insert_objective("r1", "QED", uniprot="X1")
    store.insert_objective("r1", "QED", weight=2.0)

    (qed,) = store.get_run_objectives("r1")
    assert (qed["uniprot"], qed["weight"]) == ("X1", 2.0)


def test_a_bad_direction_is_refused(db):
    with pytest.raises(ValueError, match="direction"):
        store.insert_objective("r1", "QED", direction="up")


def test_delete_run_objectives(runs):
    assert store.delete_run_objectives("m1") == 3
    assert store.get_run_objectives("m1") == []


def test_runs_meeting_every_threshold_come_with_their_objective_values(runs):
    result = store.query_runs_by_objectives({"COMT_activity": {"min": 0.8}, "DRD5_activity": {"min": 0.7}})

    assert [r["run_id"] for r in result] == ["m3", "m1", "p2"]
    assert result[1]["objectives"]["COMT_activity"]["raw_mean"] == 0.9
    assert result[1]["objectives"]["hERG_liability"]["raw_mean"] == 0.1
    assert result[1]["gradient_method"] == "mgda"


def test_threshold_queries_filter_by_method_status_and_metric(runs):
    assert [
        r["run_id"]
        for r in store.query_runs_by_objectives(
            {"COMT_activity": {"min": 0.8}, "DRD5_activity": {"min": 0.7}},
            gradient_method="mgda",
            status="completed",
        )
    ] == ["m1"]
    assert [
        r["run_id"]
        for r in store.query_runs_by_objectives({"COMT_activity": {"min": 0.425}}, metric="normalized_mean")
    ] == [
        "m3",
        "m1",
        "p1",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"min": 0.8}, ["m3", "m1", "p1", "p2"]),
        ({"gt": 0.8}, ["m3", "m1", "p1"]),
        ({"max": 0.7}, ["m2", "c1"]),
        ({"lt": 0.7}, ["c1"]),
        (0.9, ["m3", "m1"]),
    ],
)
def test_min_and_max_are_inclusive_gt_and_lt_strict(runs, spec, expected):
    assert [r["run_id"] for r in store.query_runs_by_objectives({"COMT_activity": spec})] == expected


@pytest.mark.parametrize(
    ("filters", "options", "message"),
    [
        ({}, {}, "at least one"),
        ({"COMT_activity": {"above": 1}}, {}, "unknown operator 'above'"),
        ({"COMT_activity": {"min": "high"}}, {}, "finite number"),
        ({"COMT_activity": {"min": 0.5}}, {"metric": "raw_max"}, "unknown metric"),
        ({"COMT_activity": {"min": 0.5}}, {"status": "done"}, "unknown status"),
    ],
)
def test_bad_objective_filters_are_refused(runs, filters, options, message):
    with pytest.raises(ValueError, match=message):
        store.query_runs_by_objectives(filters, **options)


def test_compare_gradient_methods_ranks_by_average_with_sample_std_and_best_run(runs):
    result = store.compare_gradient_methods("DRD5_activity")

    assert [r["gradient_method"] for r in result] == ["mgda", "pcgrad"]
    mgda = result[0]
    assert mgda["num_runs"] == 2
    assert mgda["avg"] == pytest.approx(0.775)
    assert mgda["std"] == pytest.approx(statistics.stdev([0.8, 0.75]))
    assert (mgda["best"], mgda["worst"], mgda["best_run_id"]) == (0.8, 0.75, "m1")


def test_compare_gradient_methods_follows_a_minimize_direction(runs):
    result = store.compare_gradient_methods("hERG_liability")

    assert [r["gradient_method"] for r in result] == ["pcgrad", "mgda", "cagrad"]
    assert (result[1]["best"], result[1]["worst"], result[1]["best_run_id"]) == (0.1, 0.25, "m1")
    assert result[0]["std"] is None


def test_compare_gradient_methods_over_every_status(runs):
    mgda = store.compare_gradient_methods("COMT_activity", status=None)[0]

    assert (mgda["gradient_method"], mgda["num_runs"], mgda["best_run_id"]) == ("mgda", 3, "m3")


def test_objective_statistics(runs):
    stats = store.get_objective_statistics("COMT_activity")

    values = [0.9, 0.7, 0.85, 0.8, 0.6]
    assert stats["count"] == 5
    assert stats["avg"] == pytest.approx(statistics.mean(values))
    assert stats["std"] == pytest.approx(statistics.stdev(values))
    assert (stats["min"], stats["max"], stats["best_run_id"]) == (0.6, 0.9, "m1")
    assert stats["median"] == pytest.approx(statistics.median(values))


def test_objective_statistics_with_an_even_count_and_a_method_filter(runs):
    stats = store.get_objective_statistics("COMT_activity", gradient_method="pcgrad")

    assert (stats["count"], stats["median"], stats["best_run_id"]) == (2, pytest.approx(0.825), "p1")


@pytest.fixture
def with_unknown(runs):
    """Add a run never launched whose objective values arrived through the API."""
    store.update_objective_metric("u1", "COMT_activity", "raw_mean", 0.99)
    return runs


def test_runs_never_launched_are_left_out_of_comparisons_unless_asked_for(with_unknown):
    methods = [r["gradient_method"] for r in store.compare_gradient_methods("COMT_activity", status=None)]
    every = store.compare_gradient_methods("COMT_activity", status=None, include_unknown=True)
    unknown = store.compare_gradient_methods("COMT_activity", status="unknown")

    assert None not in methods
    assert (every[0]["gradient_method"], every[0]["best_run_id"]) == (None, "u1")
    assert [(r["gradient_method"], r["num_runs"]) for r in unknown] == [(None, 1)]


def test_runs_never_launched_are_left_out_of_statistics_unless_asked_for(with_unknown):
    assert store.get_objective_statistics("COMT_activity", status=None)["count"] == 6
    assert store.get_objective_statistics("COMT_activity", status=None, include_unknown=True)["count"] == 7
    assert store.get_objective_statistics("COMT_activity", status="unknown")["best_run_id"] == "u1"


def test_runs_never_launched_are_left_out_of_threshold_queries_unless_asked_for(with_unknown):
    def found(**options):
        return [r["run_id"] for r in store.query_runs_by_objectives({"COMT_activity": 0.9}, **options)]

    assert found() == ["m3", "m1"]
    assert found(include_unknown=True) == ["u1", "m3", "m1"]
    assert found(status="unknown") == ["u1"]


def test_statistics_of_an_unknown_objective_are_empty(runs):
    assert store.get_objective_statistics("nothing")["count"] == 0
    assert store.compare_gradient_methods("nothing") == []
