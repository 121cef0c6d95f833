"""Extreme values through every event kind: each accepted event is applied, nothing is lost.

Integers past 32, 63 and 64 bits, floats at and past a double's range (``1e400`` in the JSON
text is infinite once parsed), -0.0, NaN, subnormals, long strings and deep nesting go through
the real app (signed deliveries), the real worker and a W&B project sync into each database.
Every event must end ``done``; the JSON documents read back exactly; a typed column whose value
it cannot hold is empty, and the run and the event that brought the value say why.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Float, Integer, String

import store
from ingest.settings import Settings
from ingest.worker import Worker
from store import inbox
from store.models import Base, RunObjective, TrainingRun
from tests.fake_wandb import FakeWandb
from tests.webhooks import post_pipeline, post_wandb

RUN_ID, WANDB_RUN_ID = "extreme-run", "extreme-wandb"
ENTITY, PROJECT = "mango-lab", "mango-moo"
API_KEY = "wandb-api-key"

EDGES = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64]
EDGES += [2**64 + 1, 10**30, -(10**40), 10**400]
integers = st.sampled_from(EDGES) | st.integers(-(2**70), 2**70)
FLOAT_EDGES = [1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-320]
FLOAT_EDGES += [-0.0, 0.0, 1e16, 1e20, 2.0**63, math.inf, -math.inf, math.nan, 0.1]
floats = st.sampled_from(FLOAT_EDGES) | st.floats(allow_nan=True, allow_infinity=True)
# What an integer column may be sent: integers, integral floats, and the floats no integer is.
integral = integers | st.sampled_from([1e20, 2.0**63, 3.0, -0.0, math.inf, -math.inf, math.nan])
numbers = integers | floats
characters = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
short_text = st.text(characters, max_size=8)


def text_around(limit: int) -> st.SearchStrategy[str]:
    """Strings shorter than, as long as and longer than a column's limit, ASCII or not."""
    lengths = st.sampled_from([0, 1, limit - 1, limit, limit + 1, 2 * limit]) | st.integers(0, 2 * limit)
    return st.tuples(lengths, st.sampled_from(["x", "é", "🧪"])).map(lambda pair: pair[1] * pair[0])


json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(characters, max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(short_text, children, max_size=3),
    max_leaves=8,
)


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"deeper": leaf}
    return leaf


def to_json(value: Any) -> str:
    """Write JSON as a sender would: an infinity as a number too large for a double, 1e400."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "1e400" if value > 0 else "-1e400"
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def canonical(value: Any) -> str:
    """JSON that tells 1 from 1.0 and -0.0 from 0.0, and in which NaN equals NaN."""
    return json.dumps(value, sort_keys=True)


def typed(row: dict[str, Any]) -> str:
    """Typed columns as canonical JSON; -0.0 as 0.0, whose sign SQLite's REAL does not keep."""
    return canonical(
        {column: value + 0.0 if type(value) is float else value for column, value in row.items()}
    )


# --- what a typed column holds ------------------------------------------------------------------


def expected_column(table: Any, column: str, value: Any) -> tuple[Any, bool]:
    """Return what the typed column holds for ``value``, and whether a warning says it does not fit."""
    type_ = table.__table__.c[column].type
    if value is None or value == "":
        return None, False
    if isinstance(type_, Integer):
        if isinstance(value, float):
            if not math.isfinite(value):
                return None, True
            value = int(value)
        bits = 64 if isinstance(type_, BigInteger) else 32
        return (value, False) if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else (None, True)
    if isinstance(type_, Float):
        try:
            number = float(value)
        except OverflowError:
            return None, True
        return (number, False) if math.isfinite(number) else (None, True)
    assert isinstance(type_, String)
    return (value, False) if len(value) <= type_.length else (None, True)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """One run's events (and one W&B run) with extreme values wherever a value can go."""
    training = {
        "seed": draw(integral),
        "batch_size": draw(integral),
        "max_steps": draw(integral),
        "gradient_accumulation_steps": draw(integral),
        "num_epochs": draw(integral),
        "learning_rate": draw(numbers),
        "gradient_method": draw(text_around(128)),
        "optimizer": draw(text_around(128)),
    }
    objective = {
        "name": "COMT_activity",
        "alias": "comt",
        "weight": draw(numbers),
        "uniprot": draw(text_around(64)),
        "direction": draw(text_around(16)),
    }
    config = {
        "training": training,
        "model": {"name": draw(text_around(255))},
        "infra": {"instance_type": draw(text_around(128))},
        "git_commit": draw(text_around(64)),
        "run_name": draw(text_around(512)),
        "objectives": [objective],
        "extra": draw(json_values),
        "nested": nested(draw(st.integers(0, 80)), draw(json_values)),
    }
    summary = {
        "_step": draw(integral),
        "train/loss": draw(numbers),
        "_runtime": draw(numbers),
        "objectives/comt/raw_mean": draw(numbers),
        "objectives/comt/raw_std": draw(numbers),
        "eval/igd": draw(numbers),
        "extra": draw(json_values),
    }
    return {
        "config": config,
        "chain_of_custody_id": draw(text_around(255).filter(bool)),
        "wandb_run_id": draw(text_around(255).filter(bool)),
        "step": draw(st.integers(0, 2**70) | st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30])),
        "metrics": draw(st.dictionaries(short_text, json_values, max_size=4)),
        "ending": draw(st.sampled_from(["run.finished", "run.failed", "run.killed"])),
        "summary": summary,
        "error": draw(st.text(characters, max_size=50) | text_around(5000)),
        "error_log_s3_key": draw(text_around(1024)),
        "blog_url": draw(text_around(2048)),
        "conversation_s3_key": draw(text_around(1024)),
        "wandb_config": {"run_id": WANDB_RUN_ID, "training": {"seed": draw(integral), "lr": draw(numbers)}},
        "wandb_summary": {"_step": draw(integral), "train/loss": draw(numbers), "extra": draw(json_values)},
    }


def event(event_type: str, data: dict[str, Any]) -> bytes:
    body = {"type": event_type, "timestamp": "2026-11-20T10:00:00Z", "data": {"run_id": RUN_ID, **data}}
    return to_json(body).encode()


def deliveries(scenario: dict[str, Any]) -> list[bytes]:
    launched = {"config": scenario["config"], "chain_of_custody_id": scenario["chain_of_custody_id"]}
    crash = {"error": scenario["error"], "error_log_s3_key": scenario["error_log_s3_key"]}
    attachment = {"blog_url": scenario["blog_url"], "conversation_s3_key": scenario["conversation_s3_key"]}
    return [
        event("run.launched", launched),
        event("run.started", {"wandb_run_id": scenario["wandb_run_id"]}),
        event("run.progress", {"step": scenario["step"], "metrics": scenario["metrics"]}),
        event(scenario["ending"], {"summary": scenario["summary"]}),
        event("run.crashed", crash),
        event("run.attachment", attachment),
    ]


def expected_run(scenario: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """Return the typed columns of the run and of its objective, and the fields warned of."""
    config, summary, training = scenario["config"], scenario["summary"], scenario["config"]["training"]
    sources = {
        "seed": training["seed"],
        "batch_size": training["batch_size"],
        "max_steps": training["max_steps"],
        "gradient_accumulation_steps": training["gradient_accumulation_steps"],
        "num_epochs": training["num_epochs"],
        "learning_rate": training["learning_rate"],
        "gradient_method": training["gradient_method"],
        "optimizer": training["optimizer"],
        "model_name": config["model"]["name"],
        "instance_type": config["infra"]["instance_type"],
        "git_commit": config["git_commit"],
        "run_name": config["run_name"],
        "chain_of_custody_id": scenario["chain_of_custody_id"],
        "wandb_run_id": scenario["wandb_run_id"],
        "last_step": scenario["step"],
        "total_training_steps": summary["_step"],
        "final_loss": summary["train/loss"],
        "duration_seconds": summary["_runtime"],
        "error_log_s3_key": scenario["error_log_s3_key"],
        "blog_post_url": scenario["blog_url"],
        "conversation_s3_key": scenario["conversation_s3_key"],
    }
    columns, warned = {}, set()
    for column, value in sources.items():
        columns[column], unfit = expected_column(TrainingRun, column, value)
        if unfit:
            warned.add(column)
    objective, stats = config["objectives"][0], {}
    values = {
        "weight": objective["weight"],
        "uniprot": objective["uniprot"],
        "direction": objective["direction"],
        "raw_mean": summary["objectives/comt/raw_mean"],
        "raw_std": summary["objectives/comt/raw_std"],
    }
    for column, value in values.items():
        stats[column], unfit = expected_column(RunObjective, column, value)
        if unfit:
            warned.add(f"objectives.COMT_activity.{column}")
    return columns, stats, warned


def empty_database() -> None:
    with store.get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def test_every_accepted_extreme_value_is_applied_kept_exactly_and_warned_of_where_no_column_holds_it(
    client: FlaskClient, settings: Settings
) -> None:
    with FakeWandb(api_key=API_KEY) as fake_wandb:
        worker = Worker(
            settings.model_copy(update={"wandb_base_url": fake_wandb.url, "wandb_api_key": API_KEY})
        )
        examples_run = iter(range(10**6))

        @given(scenarios())
        @examples(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def check(scenario: dict[str, Any]) -> None:
            empty_database()
            fake_wandb.add_run(
                ENTITY,
                PROJECT,
                WANDB_RUN_ID,
                config=scenario["wandb_config"],
                summary=scenario["wandb_summary"],
            )
            for body in deliveries(scenario):
                assert post_pipeline(client, body).status_code == 202, body[:200]
            automation = {"event_type": "RUN_STATE", "event_author": f"example-{next(examples_run)}"}
            automation |= {"entity_name": ENTITY, "project_name": PROJECT}
            assert post_wandb(client, automation).status_code == 202
            while worker.run_once():
                pass

            events = inbox.list_deliveries(limit=100)
            assert [(e.kind, e.status, e.last_error) for e in events if e.status != "done"] == []
            run = store.get_run(RUN_ID)
            assert canonical(run["config_json"]) == canonical(scenario["config"])
            assert canonical(run["final_metrics_json"]) == canonical(scenario["summary"])
            assert canonical(run["progress_json"]) == canonical(scenario["metrics"])
            assert run["error_message"] == (scenario["error"] or None)

            columns, stats, warned = expected_run(scenario)
            assert typed({c: run[c] for c in columns}) == typed(columns)
            (objective,) = run["objectives"]
            assert typed({c: objective[c] for c in stats}) == typed(stats)
            for stat in ("raw_mean", "raw_std"):
                if stats[stat] is None:
                    kept = objective["extra_metrics_json"][stat]
                    assert canonical(kept) == canonical(scenario["summary"][f"objectives/comt/{stat}"])
            assert set(run["warnings"] or {}) == warned
            said = [warning for e in events for warning in e.warnings or ()]
            for field in warned:
                assert any(w.startswith(f"run {RUN_ID}: {field}: ") for w in said), field

            synced = store.get_run(WANDB_RUN_ID)
            assert canonical(synced["config_json"]) == canonical(scenario["wandb_config"])
            assert canonical(synced["final_metrics_json"]) == canonical(scenario["wandb_summary"])
            seed, seed_unfit = expected_column(
                TrainingRun, "seed", scenario["wandb_config"]["training"]["seed"]
            )
            assert (synced["seed"], "seed" in (synced["warnings"] or {})) == (seed, seed_unfit)

        check()
