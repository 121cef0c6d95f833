"""The read API's answers as pydantic models, and its part of the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

import store
from store import INBOX_STATUSES


class Timed(BaseModel):
    query_ms: float | None = Field(default=None, description="How long the server took to answer.")


class RunsPage(Timed):
    total: int = Field(description="How many runs match the filter, exactly.")
    runs: list[dict[str, Any]] = Field(description="Each run's requested fields, by the names asked for.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class RunAnswer(Timed):
    run: dict[str, Any] = Field(
        description="Every column, the documents (config_json, final_metrics_json, progress_json), "
        "objectives, s3_objects, links (presigned GET URLs or null) and wandb_url."
    )


class Objective(BaseModel):
    name: str
    direction: Literal["maximize", "minimize"]
    runs: int


class Objectives(Timed):
    objectives: list[Objective]


class TopScaffold(BaseModel):
    scaffold: str = Field(description="Bemis-Murcko scaffold, canonical SMILES (never the empty one).")
    generic_scaffold: str | None
    molecules: int = Field(description="The run's molecules with this scaffold, repeats included.")
    first_step: int | None
    last_step: int | None
    best_reward: float | None
    best_smiles: str | None = Field(description="The run's molecule of the best reward, canonical SMILES.")
    depiction_url: str = Field(description="Its 2-D depiction: /api/scaffold.svg?smiles=...")


def _top_scaffolds_field() -> Any:
    return Field(
        default=None,
        description="Only with scaffolds=N: the run's top N scaffolds, most molecules or best reward first.",
    )


class Group(BaseModel):
    key: Any = Field(description="The group's value of `by` (null for runs without one).")
    n: int
    mean: float | None
    std: float | None = Field(description="Sample standard deviation; null with one value.")
    min: float | None
    max: float | None
    median: float | None
    q1: float | None
    q3: float | None
    best: float | None = Field(description="max or min, by the objective's direction.")
    best_run_id: str | None
    best_run_scaffolds: list[TopScaffold] | None = _top_scaffolds_field()


class Comparison(Timed):
    objective: str
    metric: str
    by: str
    direction: Literal["maximize", "minimize"]
    groups: list[Group]


class ParetoObjective(BaseModel):
    name: str
    direction: Literal["maximize", "minimize"]


class FrontMember(BaseModel):
    run_id: str
    values: dict[str, float]
    gradient_method: str | None
    status: str | None
    scaffolds: list[TopScaffold] | None = _top_scaffolds_field()


class ParetoPoints(BaseModel):
    """Every considered run, column by column: the i-th run is run_id[i], gradient_method[i], values[name][i]."""

    run_id: list[str]
    gradient_method: list[str | None]
    values: dict[str, list[float]]


class Front(Timed):
    objectives: list[ParetoObjective]
    metric: str
    considered: int = Field(description="Matching runs that have every objective's value.")
    front: list[FrontMember] = Field(description="The non-dominated runs, by run_id.")
    points: ParetoPoints | None = Field(
        default=None, description="Only with points=true: every considered run, in no set order."
    )


class Counts(BaseModel):
    runs: int
    completed: int
    crashed: int
    failed: int
    running: int


class StatsGroup(Counts):
    key: Any
    crash_rate: float


class Day(Counts):
    day: str = Field(description="YYYY-MM-DD (UTC) of the runs' creation.")


class Stats(Timed):
    by: str
    total: int
    groups: list[StatsGroup]
    per_day: list[Day]


class Event(BaseModel):
    id: int
    source: str
    kind: str
    dedupe_key: str
    status: str
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    body_bytes: int


class Events(Timed):
    events: list[Event]
    next_cursor: str | None


class Replayed(BaseModel):
    event_id: int
    status: Literal["done", "ignored", "invalid", "failed"]
    outcome: Literal["applied", "unchanged", "ignored"] | None
    error: str | None


class RunScaffold(BaseModel):
    scaffold: str = Field(description="Bemis-Murcko scaffold, canonical SMILES; empty for acyclic molecules.")
    generic_scaffold: str | None
    molecules: int = Field(description="Molecules seen with this scaffold, repeats included.")
    first_step: int | None
    last_step: int | None
    best_reward: float | None
    best_smiles: str | None = Field(description="The molecule of the best reward, canonical SMILES.")
    objectives: dict[str, Any] = Field(
        description="Per objective: best (by its direction), mean, count, direction."
    )


class RunScaffolds(Timed):
    run_id: str
    molecules: dict[str, Any] | None = Field(
        description="The run's counts: seen, valid, invalid, acyclic, distinct scaffolds, batches; null before any."
    )
    order_by: Literal["molecules", "best_reward", "first_step"]
    scaffolds: list[RunScaffold]


class FoundBy(BaseModel):
    run_id: str
    molecules: int
    first_step: int | None
    last_step: int | None
    best_reward: float | None
    best_smiles: str | None


class CrossRunScaffold(BaseModel):
    scaffold: str
    generic_scaffold: str | None
    runs: int = Field(description="Runs that found it.")
    molecules: int
    best_reward: float | None
    best_run_id: str | None
    best_smiles: str | None
    first_seen_at: datetime | None
    found_by: list[FoundBy] | None = Field(
        default=None, description="Only with contains: the runs that found it."
    )


class Scaffolds(Timed):
    contains: str | None
    order_by: Literal["runs", "best_reward"]
    scaffolds: list[CrossRunScaffold]


class DiversityGroup(BaseModel):
    key: Any = Field(description="The group's value of `by` (null for runs without one).")
    runs: int = Field(description="Runs of the group with molecules.")
    valid_molecules: int
    mean_scaffolds_per_run: float
    median_scaffolds_per_run: float
    scaffolds_per_1000_valid: float | None


class Diversity(Timed):
    by: str
    groups: list[DiversityGroup]


class RunHistory(Timed):
    run_id: str
    steps: list[int] = Field(description="The steps of the points, ascending.")
    times: list[float | None] = Field(description="When each point was recorded (seconds since 1970).")
    series: dict[str, list[Any]] = Field(
        description="Per key, its value at each step (null where the key has none at that step; "
        'NaN and infinities as {"$float": "NaN"}).'
    )
    last_step: int | None = Field(description="The run's latest step; ask again with since_step set to it.")
    status: str = Field(description="The run's status now: a live view stops following once it is no longer running.")
    stalled: bool = Field(description="Still running, with no event for STALE_AFTER_SECONDS.")


class RunSeries(BaseModel):
    run_id: str
    run_name: str | None
    gradient_method: str | None
    status: str | None
    steps: list[int]
    values: list[Any] = Field(description="The key's value at each step.")


class HistoryOverlay(Timed):
    key: str
    runs: list[RunSeries]


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


FILTER = _query("filter", "A filter-language expression (see the README).", {"type": "string"})
OBJECTIVE_METRIC = _query(
    "metric", "The objective statistic.", {"type": "string", "enum": list(store.COMPARE_METRICS)}
)
BY = _query("by", "A typed column or a JSON path (config.a.b, summary.key) to group by.", {"type": "string"})
LIMIT = _query("limit", "Rows per page.", {"type": "integer", "minimum": 1, "maximum": store.MAX_PAGE_LIMIT})
SCAFFOLDS_PER_RUN = _query(
    "scaffolds",
    "Add each run's top N scaffolds (1 to 50, with their depictions' URLs); 0 or absent adds none.",
    {"type": "integer", "minimum": 0, "maximum": store.SCAFFOLD_MAX_TOP_PER_RUN},
)
SCAFFOLDS_ORDER = _query(
    "scaffolds_order_by",
    "With scaffolds: the top by molecules (default) or best_reward.",
    {"type": "string", "enum": list(store.SCAFFOLD_TOP_ORDERS)},
)
SCAFFOLD_LIMIT = _query(
    "limit",
    "Scaffolds to return (default 50).",
    {"type": "integer", "minimum": 1, "maximum": store.MAX_PAGE_LIMIT},
)
HISTORY_KEYS = _query("keys", "Comma-separated keys (default: every key kept).", {"type": "string"})
SINCE_STEP = _query(
    "since_step",
    "Only the points after this step (a live view passes the last step it holds).",
    {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
)


def paths(schema: Callable[[Any], dict[str, Any]], error: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Return the read API's paths; ``schema`` makes a model's schema, ``error`` an error response."""

    def ok(model: Any, description: str = "OK") -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema(model)}}}

    read_security: list[dict[str, list[str]]] = [{"readToken": []}, {"loginCookie": []}]
    refusals = {
        "400": error("A parameter the API cannot take, named in the answer"),
        "401": error("No credentials, or a token that is not valid"),
        "503": error("Database unavailable; retry later"),
    }

    def get(summary: str, model: Any, parameters: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "security": read_security,
                "parameters": parameters,
                "responses": {"200": ok(model), **refusals, **extra},
            }
        }

    runs = get(
        "A page of matching runs with the exact total, or every match as JSON lines",
        RunsPage,
        [
            FILTER,
            _query(
                "order_by",
                "A field to sort by, `-` first for descending (default -created_at); NULLs last.",
                {"type": "string"},
            ),
            LIMIT,
            _query("cursor", "The previous page's next_cursor.", {"type": "string"}),
            _query(
                "fields",
                "Comma-separated: typed columns, JSON paths, config/summary/progress, objective.NAME.STAT.",
                {"type": "string"},
            ),
            _query(
                "format",
                "json (a page) or jsonl (every match, one object a line).",
                {"type": "string", "enum": ["json", "jsonl"]},
            ),
        ],
    )
    runs["get"]["responses"]["200"]["content"]["application/x-ndjson"] = {"schema": {"type": "string"}}
    return {
        "/api/runs": runs,
        "/api/runs/{run_id}": {
            "get": {
                "summary": "One run whole: fields, documents, objectives, crash reports, links",
                "security": read_security,
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": ok(RunAnswer), **refusals, "404": error("No such run")},
            }
        },
        "/api/runs/{run_id}/scaffolds": {
            "get": {
                "summary": "A run's molecule counts and its scaffolds",
                "security": read_security,
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query(
                        "order_by",
                        "molecules (default), best_reward or first_step.",
                        {"type": "string", "enum": ["molecules", "best_reward", "first_step"]},
                    ),
                    SCAFFOLD_LIMIT,
                ],
                "responses": {"200": ok(RunScaffolds), **refusals, "404": error("No such run")},
            }
        },
        "/api/runs/{run_id}/history": {
            "get": {
                "summary": "A run's metric history: steps and one series per key, after since_step",
                "security": read_security,
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    HISTORY_KEYS,
                    SINCE_STEP,
                    _query(
                        "max_points",
                        "Thin to at most this many points, evenly over the steps, first and last kept.",
                        {"type": "integer", "minimum": 1, "maximum": 100_000},
                    ),
                ],
                "responses": {"200": ok(RunHistory), **refusals, "404": error("No such run")},
            }
        },
        "/api/runs/{run_id}/history/stream": {
            "get": {
                "summary": "A running run's new points as server-sent events, until the run ends",
                "description": "Each event's data is an answer of /api/runs/{run_id}/history: first the "
                "points after since_step, then each change (new points, status, stalled) as it is "
                "applied. Its id is the last step it holds; a client reconnecting sends it as "
                "Last-Event-ID, which then stands for since_step. The stream ends with the run, or "
                "after five minutes (a browser reconnects by itself).",
                "security": read_security,
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    HISTORY_KEYS,
                    SINCE_STEP,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "The id of the last event received: resumes after that step.",
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "An event stream; each event's data a RunHistory",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **refusals,
                    "404": error("No such run"),
                },
            }
        },
        "/api/history": get(
            "One key's history per matching run (up to max_runs), to overlay curves",
            HistoryOverlay,
            [
                _query("key", "The metric key, e.g. train/loss.", {"type": "string", "minLength": 1}, True),
                FILTER,
                _query(
                    "max_runs",
                    "At most this many runs (default 20).",
                    {"type": "integer", "minimum": 1, "maximum": 100},
                ),
            ],
        ),
        "/api/scaffolds": get(
            "Scaffolds across the matching runs, or every scaffold containing a SMILES/SMARTS pattern",
            Scaffolds,
            [
                FILTER,
                _query(
                    "contains",
                    "A SMILES or SMARTS pattern: scaffolds containing it, with the runs that found them "
                    "(not with filter).",
                    {"type": "string"},
                ),
                _query(
                    "order_by",
                    "runs (default) or best_reward.",
                    {"type": "string", "enum": ["runs", "best_reward"]},
                ),
                _query("min_runs", "Found by at least this many runs.", {"type": "integer", "minimum": 1}),
                SCAFFOLD_LIMIT,
            ],
        ),
        "/api/diversity": get(
            "Distinct scaffolds per run and per 1,000 valid molecules, per group of matching runs",
            Diversity,
            [
                _query("by", "A typed run column to group by (default gradient_method).", {"type": "string"}),
                FILTER,
            ],
        ),
        "/api/scaffold.svg": {
            "get": {
                "summary": "A 2-D depiction of a scaffold or molecule (RDKit), cached privately for a day",
                "security": read_security,
                "parameters": [
                    _query(
                        "smiles",
                        "The scaffold or molecule, as SMILES.",
                        {"type": "string", "minLength": 1},
                        True,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "SVG",
                        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                    },
                    "304": {"description": "Not modified (If-None-Match held the ETag)"},
                    **refusals,
                },
            }
        },
        "/api/objectives": get("Each objective's name, direction and number of runs", Objectives, []),
        "/api/compare": get(
            "One objective per group of matching runs: n, mean, std, quartiles, best run (and its top scaffolds)",
            Comparison,
            [
                _query("objective", "The objective's name.", {"type": "string", "minLength": 1}, True),
                OBJECTIVE_METRIC,
                BY,
                FILTER,
                SCAFFOLDS_PER_RUN,
                SCAFFOLDS_ORDER,
            ],
        ),
        "/api/pareto": get(
            "The exact Pareto front of the matching runs over 2 to 6 objectives (and the front runs' top scaffolds)",
            Front,
            [
                _query(
                    "objectives",
                    "Comma-separated NAME, NAME:max or NAME:min (no suffix: the objective's own direction).",
                    {"type": "string", "minLength": 1},
                    True,
                ),
                OBJECTIVE_METRIC,
                FILTER,
                _query(
                    "points",
                    "true: also every considered run's id, gradient method and values (for a chart).",
                    {"type": "string", "enum": ["true", "false"]},
                ),
                SCAFFOLDS_PER_RUN,
                SCAFFOLDS_ORDER,
            ],
        ),
        "/api/stats": get(
            "Matching runs by status per group and per day, with crash rates", Stats, [BY, FILTER]
        ),
        "/api/events": get(
            "Stored deliveries of some statuses, newest first",
            Events,
            [
                _query(
                    "status",
                    f"Comma-separated statuses (default failed,dead) of {', '.join(INBOX_STATUSES)}.",
                    {"type": "string"},
                ),
                _query("source", "pipeline, wandb or s3.", {"type": "string"}),
                LIMIT,
                _query(
                    "cursor", "The previous page's next_cursor.", {"type": "string", "pattern": "^[0-9]+$"}
                ),
            ],
        ),
        "/api/events/{event_id}/replay": {
            "post": {
                "summary": "Run one stored delivery through its handler again (admin)",
                "security": [{"adminToken": []}, {"loginCookie": []}],
                "parameters": [
                    {
                        "name": "event_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "200": ok(Replayed),
                    "401": error("No credentials, or a token that is not valid"),
                    "403": error("The read token, or a login cookie without the CSRF token"),
                    "404": error("No such event"),
                    "409": error("The event is pending or processing: the worker owns it"),
                    "503": error("Database unavailable; retry later"),
                },
            }
        },
    }


SECURITY_SCHEMES = {
    "readToken": {"type": "http", "scheme": "bearer", "description": "READ_API_TOKEN (or ADMIN_API_TOKEN)."},
    "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_API_TOKEN."},
    "loginCookie": {"type": "apiKey", "in": "cookie", "name": "training_db_session"},
}
