"""The read API: JSON answers over every matching run, and replaying a stored delivery."""

from __future__ import annotations

import math
import time
from itertools import chain
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Response, current_app, g, request, stream_with_context

import store
from ingest.settings import Settings
from ingest.webhooks import schema_missing
from store import (
    SCAFFOLD_CROSS_RUN_ORDERS,
    SCAFFOLD_MAX_TOP_PER_RUN,
    SCAFFOLD_RUN_ORDERS,
    SCAFFOLD_TOP_ORDERS,
    DatabaseUnavailable,
    FilterError,
)
from web import auth, live

blueprint = Blueprint("api", __name__, url_prefix="/api")
blueprint.before_request(auth.api_guard)


class BadParameter(ValueError):
    """A query parameter the API cannot take: 400, naming it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def answer(body: dict[str, Any], status: int = 200) -> Response:
    """Serialise an answer with orjson (ISO-8601 times), saying how long the request took."""
    if status == 200 and request.method == "GET" and "started" in g:
        body["query_ms"] = round((time.perf_counter() - g.started) * 1000, 2)
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status, mimetype="application/json")


@blueprint.before_request
def start_clock() -> None:
    g.started = time.perf_counter()


@blueprint.before_request
def refuse_nul_characters() -> Response | None:
    """Answer 400 for a parameter with a NUL character, 404 for such a path: PostgreSQL's text has none."""
    for name, value in request.args.items(multi=True):
        if "\x00" in value:
            return answer(
                {"error": "bad_parameter", "message": f"{name}: contains a NUL character", "parameter": name},
                400,
            )
    if "\x00" in request.path:
        return answer({"error": "not_found", "message": "no id holds a NUL character"}, 404)
    return None


@blueprint.errorhandler(ValueError)
def bad_parameter(error: ValueError) -> Response:
    body: dict[str, Any] = {"error": "bad_parameter", "message": str(error)}
    if isinstance(error, BadParameter):
        body["parameter"] = error.parameter
    if isinstance(error, FilterError):
        body["message"] = f"filter: {error}"
        body.update(parameter="filter", problem=error.problem, position=error.position)
        body.update(line=error.line, column=error.column, hint=error.hint)
    return answer(body, 400)


@blueprint.errorhandler(DatabaseUnavailable)
def database_unavailable(error: DatabaseUnavailable) -> Response | tuple[Response, int]:
    if store.schema_missing(error):
        return schema_missing()
    return answer({"error": "database_unavailable", "message": str(error)}, 503)


def not_found(what: str) -> Response:
    return answer({"error": "not_found", "message": f"{what} not found"}, 404)


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


@blueprint.get("/objectives")
def objectives() -> Response:
    """Each objective's name, direction and number of runs."""
    return answer({"objectives": store.list_objectives()})


def wandb_url(run: dict[str, Any]) -> str | None:
    """Link to the run's page on W&B, when the run came with its W&B coordinates."""
    if run.get("wandb_entity") and run.get("wandb_project") and run.get("wandb_run_id"):
        return f"https://wandb.ai/{run['wandb_entity']}/{run['wandb_project']}/runs/{run['wandb_run_id']}"
    return None


@blueprint.get("/runs/<path:run_id>")
def run(run_id: str) -> Response:
    """One run whole: fields, documents, objectives, crash reports and attachments with links."""
    found = store.run_detail(run_id)
    if found is None:
        return not_found(f"run {run_id!r}")
    found["wandb_url"] = wandb_url(found)
    found["links"] = presigned_links(found, _settings())
    return answer({"run": found})


LINKED_KEYS = ("error_log_s3_key", "crash_report_s3_key", "crash_analysis_s3_key", "conversation_s3_key")


def presigned_links(run: dict[str, Any], settings: Settings) -> dict[str, str | None]:
    """Presigned GET URLs for the run's S3 objects (None when CRASH_REPORT_BUCKET is unset)."""
    keys = {name: run[name] for name in LINKED_KEYS if run.get(name)}
    if not keys or not settings.crash_report_bucket:
        return {name: None for name in keys}
    client = s3_client()
    return {
        name: client.generate_presigned_url(
            "get_object",
            Params={"Bucket": settings.crash_report_bucket, "Key": key},
            ExpiresIn=settings.presigned_url_seconds,
        )
        for name, key in keys.items()
    }


def s3_client() -> Any:
    """One boto3 S3 client per app: it signs URLs locally, with the environment's credentials."""
    client = current_app.extensions.get("s3_presigner")
    if client is None:
        import boto3

        client = current_app.extensions["s3_presigner"] = boto3.client("s3")
    return client


# Event ids are 64-bit integers; a larger number names no event.
MAX_EVENT_ID = 2**63 - 1


@blueprint.post("/events/<int:event_id>/replay")
def replay_event(event_id: int) -> Response:
    """Run one stored delivery through its handler again, as `training-db replay inbox --event-id` does."""
    from ingest.worker import make_context, replay_delivery

    delivery = store.get_delivery(event_id) if event_id <= MAX_EVENT_ID else None
    if delivery is None:
        return not_found(f"event {event_id}")
    if delivery.status not in store.REPLAYABLE_STATUSES:
        return answer(
            {
                "error": "not_replayable",
                "message": f"event {event_id} is {delivery.status}: the worker owns it until it finishes",
            },
            409,
        )
    replayed = replay_delivery(delivery, make_context(_settings()))
    return answer(
        {
            "event_id": event_id,
            "status": replayed.status,
            "outcome": replayed.outcome.value if replayed.outcome else None,
            "error": replayed.error,
        }
    )


def _arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BadParameter(name, f"{name}: given {len(values)} times; give it once")
    return values[0] if values else None


def _text(name: str, default: str | None = None) -> str | None:
    value = _arg(name)
    return value if value else default


def _given(name: str, default: str) -> str:
    """A parameter with a fixed set of values: absent is the default, empty is not a value."""
    value = _arg(name)
    return default if value is None else value


def _integer(name: str, default: int, low: int, high: int) -> int:
    value = _optional_integer(name, low, high)
    return default if value is None else value


def _optional_integer(name: str, low: int, high: int) -> int | None:
    raw = _arg(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{name}: must be an integer from {low} to {high}, not {raw!r}") from None
    if not low <= value <= high:
        raise BadParameter(name, f"{name}: must be an integer from {low} to {high}, not {value}")
    return value


def _flag(name: str) -> bool:
    raw = _given(name, "false")
    if raw not in ("true", "false"):
        raise BadParameter(name, f"{name}: must be true or false, not {raw!r}")
    return raw == "true"


def _list(name: str) -> list[str] | None:
    raw = _text(name)
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


@blueprint.get("/runs")
def runs() -> Response:
    """A page of matching runs with their total, or every match as JSON lines (format=jsonl)."""
    where = _text("filter")
    order_by = _text("order_by")
    fields = _list("fields")
    output = _given("format", "json")
    # Checked whatever the format, though JSON lines carry every match and take no limit.
    limit = _integer("limit", 50, 1, store.MAX_PAGE_LIMIT)
    if output == "jsonl":
        lines = store.stream_runs(where, order_by, fields)
        # The first chunk is read now, so that a bad filter is a 400, not a broken stream.
        first = next(lines, b"")
        return Response(
            stream_with_context(chain([first], lines)),
            mimetype="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="runs.jsonl"'},
        )
    if output != "json":
        raise BadParameter("format", f"format: must be json or jsonl, not {output!r}")
    return answer(store.page_runs(where, order_by, limit, _text("cursor"), fields))


@blueprint.get("/compare")
def compare() -> Response:
    """One objective summarised per group of matching runs: n, mean, std, quartiles, the best run.

    With scaffolds=N each group comes with its best run's top N scaffolds.
    """
    objective = _text("objective")
    if objective is None:
        raise BadParameter("objective", "objective: name the objective to compare on")
    top = _top_scaffolds()
    compared = store.compare_groups(
        objective,
        _given("metric", "raw_mean"),
        _text("by", "gradient_method") or "",
        _text("filter"),
    )
    if top is not None:
        best_runs = [group["best_run_id"] for group in compared["groups"] if group["best_run_id"]]
        found = store.top_scaffolds_of_runs(best_runs, *top)
        for group in compared["groups"]:
            group["best_run_scaffolds"] = _depicted(found.get(group["best_run_id"], []))
    return answer(compared)


@blueprint.get("/pareto")
def pareto() -> Response:
    """The exact Pareto front of the matching runs over 2 to 6 objectives, and with points=true every run considered.

    With scaffolds=N each front run comes with its top N scaffolds.
    """
    objectives = _text("objectives")
    if objectives is None:
        raise BadParameter("objectives", "objectives: name 2 to 6 objectives, e.g. A:max,B:min,C")
    metric = _given("metric", "raw_mean")
    top = _top_scaffolds()
    found = store.pareto_runs(objectives, metric, _text("filter"), _flag("points"))
    if top is not None:
        scaffolds_of = store.top_scaffolds_of_runs([member["run_id"] for member in found["front"]], *top)
        for member in found["front"]:
            member["scaffolds"] = _depicted(scaffolds_of[member["run_id"]])
    return answer(found)


def _top_scaffolds() -> tuple[int, str] | None:
    """The scaffolds=N option of /api/pareto and /api/compare: (N, order), or None when not asked."""
    per_run = _integer("scaffolds", 0, 0, SCAFFOLD_MAX_TOP_PER_RUN)
    order_by = _given("scaffolds_order_by", "molecules")
    if order_by not in SCAFFOLD_TOP_ORDERS:
        raise BadParameter(
            "scaffolds_order_by",
            f"scaffolds_order_by: must be one of {', '.join(SCAFFOLD_TOP_ORDERS)}, not {order_by!r}",
        )
    return (per_run, order_by) if per_run else None


def depiction_url(smiles: str) -> str:
    """The address of a scaffold's 2-D depiction, served by scaffold_depiction below."""
    return "/api/scaffold.svg?" + urlencode({"smiles": smiles})


def _depicted(scaffolds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**scaffold, "depiction_url": depiction_url(scaffold["scaffold"])} for scaffold in scaffolds]


@blueprint.get("/stats")
def stats() -> Response:
    """Matching runs counted per group by status, with the crash rate, and per day of creation."""
    return answer(store.run_stats(_text("by", "gradient_method") or "", _text("filter")))


EVENT_FIELDS = (
    "id",
    "source",
    "kind",
    "dedupe_key",
    "status",
    "attempts",
    "last_error",
    "received_at",
    "processed_at",
)


@blueprint.get("/events")
def events() -> Response:
    """Stored deliveries of some statuses (default failed and dead), newest first, with their last error."""
    statuses = _list("status") or ["failed", "dead"]
    source = _text("source")
    limit = _integer("limit", 50, 1, store.MAX_PAGE_LIMIT)
    # An empty cursor is refused, not read as none: the schema says digits, and so do the pages.
    cursor = _arg("cursor")
    before = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_EVENT_ID:
            raise BadParameter("cursor", "cursor: not a cursor this API gave out")
        before = int(cursor)
    found = store.page_deliveries(statuses, source, before, limit + 1)
    page = found[:limit]
    return answer(
        {
            "events": [
                {**{name: getattr(d, name) for name in EVENT_FIELDS}, "body_bytes": len(d.body)} for d in page
            ],
            "next_cursor": str(page[-1].id) if len(found) > limit else None,
        }
    )


def _store_answer(parameter: str, question: Any, *args: Any, **kwargs: Any) -> Any:
    """Ask the store; a ValueError it raises about ``parameter`` becomes a 400 naming it (filters name themselves)."""
    try:
        return question(*args, **kwargs)
    except FilterError:
        raise
    except ValueError as error:
        raise BadParameter(parameter, f"{parameter}: {error}") from None


@blueprint.get("/runs/<path:run_id>/scaffolds")
def run_scaffolds(run_id: str) -> Response:
    """A run's molecule counts and its scaffolds: most molecules, best reward or earliest step first."""
    order_by = _given("order_by", "molecules")
    if order_by not in SCAFFOLD_RUN_ORDERS:
        raise BadParameter(
            "order_by", f"order_by: must be one of {', '.join(SCAFFOLD_RUN_ORDERS)}, not {order_by!r}"
        )
    limit = _integer("limit", 50, 1, store.MAX_PAGE_LIMIT)
    counts = store.get_run_molecules(run_id)
    if counts is None and store.get_run(run_id) is None:
        return not_found(f"run {run_id!r}")
    found = store.get_run_scaffolds(run_id, order_by, limit)
    return answer({"run_id": run_id, "molecules": counts, "order_by": order_by, "scaffolds": found})


# Bounds of the history endpoints' parameters: a step is a 64-bit integer; keys as many as a run keeps.
MAX_STEP = 2**63 - 1
MAX_HISTORY_KEYS = 64
MAX_HISTORY_POINTS = 100_000
MAX_OVERLAY_RUNS = 100


def _history_keys() -> list[str] | None:
    keys = _list("keys")
    if keys is not None and len(keys) > MAX_HISTORY_KEYS:
        raise BadParameter("keys", f"keys: at most {MAX_HISTORY_KEYS} keys, not {len(keys)}")
    return keys


def _since_step() -> int | None:
    return _optional_integer("since_step", -MAX_STEP - 1, MAX_STEP)


@blueprint.get("/runs/<path:run_id>/history")
def run_history(run_id: str) -> Response:
    """A run's metric history: its steps and one series per key, after since_step when given.

    A script following a running run may poll this with the last step it holds: the answer is the
    new points only, read by key from the run's history rows. The run page holds the stream below.
    """
    keys, since_step = _history_keys(), _since_step()
    max_points = _optional_integer("max_points", 1, MAX_HISTORY_POINTS)
    found = _store_answer(
        "keys", store.get_run_history, run_id, keys=keys, since_step=since_step, max_points=max_points
    )
    if found is None:
        return not_found(f"run {run_id!r}")
    return answer(_history_answer(found))


def _history_answer(found: dict[str, Any]) -> dict[str, Any]:
    found["series"] = {key: _marked(values) for key, values in found["series"].items()}
    return found


@blueprint.get("/runs/<path:run_id>/history/stream")
def run_history_stream(run_id: str) -> Response:
    """A running run's new points as server-sent events, each event an answer of the history
    endpoint: first what is new after since_step, then each change until the run ends.

    A browser's EventSource reconnecting sends the last event's id (its last step) as
    Last-Event-ID, which then stands for since_step. See web/live.py.
    """
    keys, since_step = _history_keys(), _since_step()
    resumed = request.headers.get("Last-Event-ID")
    if resumed:
        try:
            since_step = int(resumed)
        except ValueError:
            since_step = None
        if since_step is None or not -MAX_STEP - 1 <= since_step <= MAX_STEP:
            raise BadParameter("Last-Event-ID", f"Last-Event-ID: must be a step, not {resumed!r}")

    def read(since: int | None) -> dict[str, Any] | None:
        found = _store_answer("keys", store.get_run_history, run_id, keys=keys, since_step=since)
        return None if found is None else _history_answer(found)

    first = read(since_step)
    if first is None:
        return not_found(f"run {run_id!r}")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    events = live.stream(run_id, since_step, first, read)
    return Response(events, mimetype="text/event-stream", headers=headers)


@blueprint.get("/history")
def history() -> Response:
    """One key's history for each of the matching runs (most recently updated first), to overlay."""
    key = _text("key")
    if key is None:
        raise BadParameter("key", "key: name the metric to overlay, e.g. train/loss")
    max_runs = _integer("max_runs", 20, 1, MAX_OVERLAY_RUNS)
    found = _store_answer("key", store.get_history, _text("filter"), key, max_runs=max_runs)
    for run in found:
        run["values"] = _marked(run["values"])
    return answer({"key": key, "runs": found})


def _marked(values: list[Any]) -> list[Any]:
    """Write NaN and the infinities as the run documents do ({"$float": "NaN"}): JSON has no such
    numbers, and null already means that a key has no value at a step."""
    return [
        {"$float": "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")}
        if isinstance(v, float) and not math.isfinite(v)
        else v
        for v in values
    ]


@blueprint.get("/scaffolds")
def scaffolds() -> Response:
    """Scaffolds across the matching runs (most runs or best reward first), or those containing a pattern."""
    where = _text("filter")
    contains = _text("contains")
    order_by = _given("order_by", "runs")
    min_runs = _integer("min_runs", 1, 1, 2**31 - 1)
    limit = _integer("limit", 50, 1, store.MAX_PAGE_LIMIT)
    if order_by not in SCAFFOLD_CROSS_RUN_ORDERS:
        raise BadParameter(
            "order_by", f"order_by: must be one of {', '.join(SCAFFOLD_CROSS_RUN_ORDERS)}, not {order_by!r}"
        )
    if contains is not None:
        if where is not None:
            raise BadParameter("contains", "contains: searches every run; give it without filter")
        found = _store_answer(
            "contains", store.find_runs_with_scaffold, contains, substructure=True, limit=limit
        )
        found = [scaffold for scaffold in found if scaffold["runs"] >= min_runs]
        if order_by == "best_reward":
            found = [scaffold for scaffold in found if scaffold["best_reward"] is not None]
            found.sort(key=lambda scaffold: (-scaffold["best_reward"], scaffold["scaffold"]))
    else:
        found = store.query_scaffolds(where, min_runs, order_by, limit)
    return answer({"contains": contains, "order_by": order_by, "scaffolds": found})


@blueprint.get("/diversity")
def diversity() -> Response:
    """Per group of matching runs: distinct scaffolds per run (mean, median) and per 1,000 valid molecules."""
    by = _text("by", "gradient_method") or ""
    groups = _store_answer("by", store.scaffold_diversity, by, _text("filter"))
    return answer({"by": by, "groups": [{"key": group.pop(by), **group} for group in groups]})


SVG_MAX_AGE = 86_400


@blueprint.get("/scaffold.svg")
def scaffold_depiction() -> Response:
    """A 2-D depiction of a scaffold or molecule (RDKit's SVG drawer), cached by the browser for a day."""
    smiles = _text("smiles")
    if smiles is None:
        raise BadParameter("smiles", "smiles: name the scaffold or molecule to draw")
    svg = _store_answer("smiles", store.scaffold_svg, smiles)
    response = Response(svg, mimetype="image/svg+xml")
    # Private: the depiction is behind the read guard, so shared caches must not keep it.
    response.headers["Cache-Control"] = f"private, max-age={SVG_MAX_AGE}"
    response.add_etag()
    # Answers 304 when the browser's copy is current, by changing the response in place.
    response.make_conditional(request)
    return response
