"""The core API on SQLite and PostgreSQL: runs, statuses, summaries and attachments."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

import store

CONFIG = {
    "run_name": "mgda-comt",
    "project": "mango-moo",
    "git_commit": "7fd63116",
    "training": {
        "batch_size": 64,
        "learning_rate": 3e-4,
        "gradient_method": "mgda",
        "gradient_accumulation_steps": 8,
        "num_epochs": 10,
        "max_steps": 20000,
        "optimizer": "adamw",
        "seed": 1234,
    },
    "model": {"name": "reinvent-prior-v3"},
    "infra": {"instance_type": "p4d.24xlarge"},
    "objectives": [
        {
            "name": "COMT_activity",
            "alias": "COMT_activity_maximize",
            "weight": 1.0,
            "direction": "maximize",
            "params": {"uniprot": "P21964"},
        },
        {
            "name": "hERG_liability",
            "alias": "hERG_liability_minimize",
            "weight": 0.5,
            "direction": "minimize",
        },
    ],
}
SUMMARY = {
    "_step": 20000,
    "_runtime": 99.5,
    "_wandb": {"runtime": 100},
    "train/loss": 0.42,
    "objectives/COMT_activity_maximize/raw_mean": 0.86,
    "objectives/COMT_activity_maximize/top10_mean": 0.97,
    "objectives/hERG_liability_minimize/raw_mean": 0.12,
}


def test_insert_run_stores_the_config_extracts_typed_columns_and_creates_objectives(db):
    assert store.insert_run(
        "r1", wandb_run_id="w1", config_dict=CONFIG, chain_of_custody_id="coc-1", wandb_entity="lab"
    )

    run = store.get_run("r1")
    assert run["config_json"] == CONFIG
    expected = {
        "wandb_run_id": "w1",
        "wandb_entity": "lab",
        "wandb_project": "mango-moo",
        "run_name": "mgda-comt",
        "status": "launched",
        "gradient_method": "mgda",
        "batch_size": 64,
        "learning_rate": 3e-4,
        "gradient_accumulation_steps": 8,
        "num_epochs": 10,
        "max_steps": 20000,
        "optimizer": "adamw",
        "model_name": "reinvent-prior-v3",
        "num_objectives": 2,
        "seed": 1234,
        "instance_type": "p4d.24xlarge",
        "git_commit": "7fd63116",
        "chain_of_custody_id": "coc-1",
    }
    assert {k: run[k] for k in expected} == expected
    objectives = store.get_run_objectives("r1")
    assert [
        (o["objective_name"], o["objective_alias"], o["uniprot"], o["weight"], o["direction"])
        for o in objectives
    ] == [
        ("COMT_activity", "COMT_activity_maximize", "P21964", 1.0, "maximize"),
        ("hERG_liability", "hERG_liability_minimize", None, 0.5, "minimize"),
    ]


def test_inserting_the_same_run_again_changes_nothing(db):
    store.insert_run("r1", config_dict=CONFIG)
    before = store.get_run("r1")

    assert store.insert_run("r1", config_dict=CONFIG) is False
    assert store.get_run("r1") == before


def test_update_run_status_stores_the_summary_and_derives_final_fields_and_objective_values(db):
    store.insert_run("r1", config_dict=CONFIG)

    assert store.update_run_status("r1", "finished", final_metrics_json=SUMMARY)

    run = store.get_run("r1")
    assert (run["status"], run["final_loss"], run["total_training_steps"], run["duration_seconds"]) == (
        "completed",
        0.42,
        20000,
        100.0,
    )
    assert run["completed_at"] is not None
    comt, herg = store.get_run_objectives("r1")
    assert (comt["raw_mean"], comt["extra_metrics_json"]) == (0.86, {"top10_mean": 0.97})
    assert herg["raw_mean"] == 0.12


def test_explicit_final_values_win_over_the_summary(db):
    store.update_run_status("r1", "completed", final_metrics_json=SUMMARY, final_loss=0.1, duration_seconds=5)

    run = store.get_run("r1")
    assert (run["final_loss"], run["duration_seconds"]) == (0.1, 5.0)


def test_runtime_falls_back_to_underscore_runtime(db):
    store.update_run_status("r1", "completed", final_metrics_json={"_runtime": 12.5})

    assert store.get_run("r1")["duration_seconds"] == 12.5


def test_a_summary_before_the_launch_is_mapped_to_objective_names_once_the_config_arrives(db):
    summary = {"objectives/comt_max/raw_mean": 0.9}
    store.update_run_status("r1", "completed", final_metrics_json=summary)
    assert [o["objective_name"] for o in store.get_run_objectives("r1")] == ["comt_max"]

    store.insert_run(
        "r1",
        config_dict={"objectives": [{"name": "COMT_activity", "alias": "comt_max", "direction": "maximize"}]},
    )

    objectives = store.get_run_objectives("r1")
    assert [(o["objective_name"], o["raw_mean"]) for o in objectives] == [("COMT_activity", 0.9)]


def test_the_alias_suffix_is_stripped_when_the_run_has_no_objectives(db):
    store.update_run_status("r1", "completed", final_metrics_json={"objectives/QED_maximize/raw_mean": 0.5})

    assert store.get_run_objectives("r1")[0]["objective_name"] == "QED"


@pytest.mark.parametrize(
    ("wandb_state", "status"),
    [
        ("finished", "completed"),
        ("pending", "launched"),
        ("preempting", "running"),
        ("crashed", "crashed"),
        ("Killed", "killed"),
    ],
)
def test_wandb_states_map_onto_the_vocabulary(db, wandb_state, status):
    store.update_run_status("r1", wandb_state)

    assert store.get_run("r1")["status"] == status


def test_an_unknown_status_is_a_value_error_not_a_new_value(db):
    with pytest.raises(ValueError, match="unknown status 'exploded'"):
        store.update_run_status("r1", "exploded")
    assert store.get_run("r1") is None


def test_a_status_never_moves_back(db):
    store.update_run_status("r1", "completed")
    store.update_run_status("r1", "running")
    store.insert_run("r1", status="launched")

    assert store.get_run("r1")["status"] == "completed"


def test_calls_on_a_run_that_does_not_exist_create_it_and_the_launch_fills_the_rest(db):
    store.attach_crash_data("r1", error_log_s3_key="crash-reports/r1/error.log")
    store.update_objective_metric("r1", "COMT_activity", "raw_mean", 0.7)
    store.update_run_status("r1", "crashed")

    store.insert_run("r1", config_dict=CONFIG)

    run = store.get_run("r1")
    assert (run["status"], run["error_log_s3_key"], run["batch_size"]) == (
        "crashed",
        "crash-reports/r1/error.log",
        64,
    )
    comt = next(o for o in run["objectives"] if o["objective_name"] == "COMT_activity")
    assert (comt["raw_mean"], comt["direction"]) == (0.7, "maximize")


def test_a_run_known_only_from_what_came_before_its_launch_is_unknown_and_left_out_of_stats(db):
    store.attach_crash_data("r1", error_log_s3_key="crash-reports/r1/error.log")
    store.update_objective_metric("r1", "QED", "raw_mean", 0.5)
    store.insert_run("r2", config_dict={"gradient_method": "mgda"})

    assert store.get_run("r1")["status"] == "unknown"
    assert store.get_stats()["total_runs"] == 1
    assert store.get_stats()["runs_by_status"] == {"launched": 1}
    assert store.get_stats()["num_objectives"] == 0
    every = store.get_stats(include_unknown=True)
    assert (every["total_runs"], every["runs_by_status"]) == (2, {"unknown": 1, "launched": 1})
    assert every["num_objectives"] == 1


def test_unknown_is_below_launched_on_the_status_ladder(db):
    store.attach_blog_post("r1", "https://blog/r1")
    store.update_run_status("r1", "unknown")
    store.insert_run("r1")
    store.update_run_status("r1", "unknown")

    assert store.get_run("r1")["status"] == "launched"


def test_a_wandb_synced_run_takes_its_wandb_state(db):
    store.upsert_wandb_run("w1", "mango-lab", "mango-moo", "running", config={}, summary={})
    store.upsert_wandb_run("w2", "mango-lab", "mango-moo", "pending", config={}, summary={})

    assert store.get_run("w1")["status"] == "running"
    assert store.get_run("w2")["status"] == "launched"


def test_attachments_are_stored(db):
    store.attach_crash_data("r1", "e.log", "report.md", "analysis.md")
    store.attach_conversation("r1", "conversations/r1.json")
    store.attach_blog_post("r1", "https://blog/r1")

    run = store.get_run("r1")
    assert (run["error_log_s3_key"], run["crash_report_s3_key"], run["crash_analysis_s3_key"]) == (
        "e.log",
        "report.md",
        "analysis.md",
    )
    assert (run["conversation_s3_key"], run["blog_post_url"]) == ("conversations/r1.json", "https://blog/r1")


@pytest.mark.parametrize(
    "document",
    [
        {"nested": {"deep": {"list": [1, 2.5, None, True, "x", {"a": []}]}}},
        {"unicode": "δ ✓ 日本語 \U0001f600", "empty": "", "quote": 'a"b\\c'},
        {"big": 1.7976931348623157e308, "small": 5e-324, "negzero": -0.0, "int": 2**62},
        {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "in_list": [math.nan, math.inf]},
        {"$float": "NaN", "x": {"$float": "Infinity"}, "y": {"$$float": 1}, "z": {"$float": 1.5}},
    ],
)
def test_a_config_and_summary_read_back_equal_to_what_went_in(db, document):
    store.insert_run("r1", config_dict=document)
    store.update_run_status("r1", "completed", final_metrics_json=document)

    run = store.get_run("r1")
    assert _same(run["config_json"], document)
    assert _same(run["final_metrics_json"], document)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_nan_final_values_leave_typed_columns_empty_and_keep_the_exact_value_in_json(db):
    store.update_run_status(
        "r1",
        "completed",
        final_metrics_json={"train/loss": math.nan, "objectives/QED_maximize/raw_mean": math.nan},
    )

    run = store.get_run("r1")
    assert run["final_loss"] is None
    assert math.isnan(run["final_metrics_json"]["train/loss"])
    assert math.isnan(run["objectives"][0]["extra_metrics_json"]["raw_mean"])


def test_record_progress_keeps_the_latest_step(db):
    store.record_progress("r1", 10, {"loss": 2.0})
    store.record_progress("r1", 30, {"loss": 1.0})
    store.record_progress("r1", 20, {"loss": 9.0})
    store.record_progress("r1", 30, {"reward": 0.5})

    run = store.get_run("r1")
    assert (run["status"], run["last_step"], run["progress_json"]) == (
        "running",
        30,
        {"loss": 1.0, "reward": 0.5},
    )


def test_created_at_and_metadata_are_checked(db):
    store.insert_run("r1", created_at="2026-01-02T03:04:05Z", run_name="n")

    assert store.get_run("r1")["created_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown run field"):
        store.insert_run("r1", colour="blue")
    with pytest.raises(ValueError, match="batch_size"):
        store.insert_run("r1", batch_size="big")
    with pytest.raises(ValueError, match="run_id"):
        store.insert_run("", config_dict={})


def test_get_run_of_a_missing_run_is_none(db):
    assert store.get_run("nope") is None


def test_get_stats_counts_by_status_and_method_and_the_crash_rate(db):
    store.insert_run(
        "a",
        config_dict={"gradient_method": "mgda", "objectives": [{"name": "QED"}]},
        created_at="2026-01-01T00:00:00Z",
    )
    store.insert_run(
        "b",
        config_dict={"gradient_method": "mgda", "objectives": [{"name": "SA"}]},
        created_at="2026-01-03T00:00:00Z",
    )
    store.insert_run("c", config_dict={"gradient_method": "pcgrad"}, created_at="2026-01-02T00:00:00Z")
    store.update_run_status("a", "crashed")
    store.update_run_status("b", "completed")

    stats = store.get_stats()

    assert stats["total_runs"] == 3
    assert stats["runs_by_status"] == {"launched": 1, "completed": 1, "crashed": 1}
    assert stats["runs_by_gradient_method"] == {"mgda": 2, "pcgrad": 1}
    assert stats["num_objectives"] == 2
    assert stats["crash_rate"] == pytest.approx(1 / 3)
    assert stats["oldest_run_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert stats["newest_run_at"] == datetime(2026, 1, 3, tzinfo=UTC)


def test_get_stats_of_an_empty_database(db):
    assert store.get_stats()["total_runs"] == 0
    assert store.get_stats()["crash_rate"] == 0.0


HUGE_CONFIG = {
    "training": {"seed": 2**64 + 1, "batch_size": 2**31, "max_steps": 1e20, "learning_rate": 10**400},
    "model": {"name": "m" * 300},
    "objectives": [{"name": "COMT_activity", "alias": "comt", "weight": 10**400, "uniprot": "u" * 65}],
}
HUGE_SUMMARY = {"_step": 2**63, "train/loss": -(10**400), "_runtime": math.inf, "objectives/comt/raw_mean": 10**400}
HUGE_COLUMNS = ("seed", "batch_size", "max_steps", "learning_rate", "model_name", "total_training_steps")


def _check_huge_run(run_id: str) -> None:
    run = store.get_run(run_id)
    assert (run["config_json"], run["final_metrics_json"]) == (HUGE_CONFIG, HUGE_SUMMARY)
    assert all(run[column] is None for column in (*HUGE_COLUMNS, "final_loss", "duration_seconds"))
    (objective,) = run["objectives"]
    assert (objective["weight"], objective["uniprot"], objective["raw_mean"]) == (None, None, None)
    assert objective["extra_metrics_json"] == {"raw_mean": 10**400}
    assert set(run["warnings"]) >= {
        *HUGE_COLUMNS,
        "final_loss",
        "objectives.COMT_activity.weight",
        "objectives.COMT_activity.uniprot",
        "objectives.COMT_activity.raw_mean",
    }


def test_direct_calls_keep_values_no_column_holds_in_json_and_warn_on_the_run(db):
    assert store.insert_run("r1", config_dict=HUGE_CONFIG, wandb_entity="e" * 300, chain_of_custody_id="c" * 300)
    assert store.update_run_status("r1", "finished", final_metrics_json=HUGE_SUMMARY)
    assert store.record_progress("r1", 2**70, {"loss": 10**400})
    assert store.attach_blog_post("r1", "https://" + "b" * 3000)

    _check_huge_run("r1")
    run = store.get_run("r1")
    assert (run["wandb_entity"], run["chain_of_custody_id"], run["last_step"], run["blog_post_url"]) == (None,) * 4
    assert run["progress_json"] == {"loss": 10**400}
    assert "longer than 255" in run["warnings"]["wandb_entity"]
    assert "longer than 2048" in run["warnings"]["blog_post_url"]


def test_load_runs_keeps_values_no_column_holds_in_json_and_warns_on_the_run(db):
    record = {"run_id": "r1", "config": HUGE_CONFIG, "state": "finished", "summary": HUGE_SUMMARY}

    assert store.load_runs([record, {**record, "run_id": "r2"}, record]) == 3

    _check_huge_run("r1")
    _check_huge_run("r2")


def test_an_empty_string_given_for_a_text_column_is_kept(db):
    assert store.insert_run("r1", run_name="", wandb_entity="")

    assert (store.get_run("r1")["run_name"], store.get_run("r1")["wandb_entity"]) == ("", "")
