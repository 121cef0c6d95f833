"""The pages: server-rendered views of the read API, every view's state in its URL.

Each page asks the read API in-process (the same view functions, parameters and errors a
browser's fetch gets), so the pages and ``/api`` are one code path: a filter error on the
runs page is the API's error, position and suggestion included.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import time
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from itertools import chain
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    stream_with_context,
)
from markupsafe import Markup

import store
from store import SCALAR_COLUMNS
from web import auth
from web.api import depiction_url

blueprint = Blueprint("pages", __name__, template_folder="templates")
blueprint.before_request(auth.page_guard)

# Unguarded: the login page needs its stylesheet before anyone has logged in, and none of
# these files says anything about the data.
assets = Blueprint("assets", __name__, static_folder="static", static_url_path="/assets")

DEFAULT_COLUMNS = ("run_id", "status", "gradient_method", "batch_size", "learning_rate", "created_at")
PAGE_SIZES = (25, 50, 100, 250)
METRICS = ("raw_mean", "normalized_mean", "raw_std", "normalized_std", "weight")
SIDE_BY_SIDE_RUNS = (2, 10)
# Top scaffolds shown per front run, best run and side-by-side run unless the URL says otherwise.
TOP_SCAFFOLDS = "3"
RUN_PAGE_SCAFFOLDS = 12
DEFAULT_CURVE_KEYS = 4
DEFAULT_CURVE_KEY = "train/loss"
OVERLAY_RUNS = 20
SCAFFOLDS_PAGE_SIZE = 30
OBJECTIVES_TTL_SECONDS = 60.0
# The fields of a run the side-by-side view compares besides its config and summary.
RUN_FIELDS_COMPARED = (
    "status",
    "gradient_method",
    "batch_size",
    "learning_rate",
    "created_at",
    "finished_at",
    "last_step",
)


class ApiError(Exception):
    """The read API refused a request: its status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", "error"))
        self.status = status
        self.body = body


def api(path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Answer a GET of the read API in-process, as the browser would get it, or raise ApiError."""
    query = {key: value for key, value in (params or {}).items() if value not in (None, "")}
    headers = {name: value for name in ("Cookie", "Authorization") if (value := request.headers.get(name))}
    with current_app.test_request_context(path, query_string=query, headers=headers):
        response = current_app.full_dispatch_request()
    body: dict[str, Any] = orjson.loads(response.get_data())
    if response.status_code != 200:
        raise ApiError(response.status_code, body)
    return body


def _answer(html: str, error: object) -> tuple[str, int]:
    """A page with the form as sent: 400 when the API refused its parameters, shown on the page."""
    return html, 400 if error else 200


def _error_for_page(error: ApiError) -> dict[str, Any]:
    """Keep what a form shows: the message, and for a filter where in it things went wrong."""
    if error.status >= 500:
        abort(error.status, error.body.get("message"))
    body = dict(error.body)
    body["in_filter"] = body.get("parameter") == "filter" or "column" in body or "position" in body
    return body


@blueprint.app_template_filter("number")
def format_number(value: Any) -> str:
    """Show a number to 4 significant digits, integers whole; anything else as it is."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, dict) and "$float" in value:
        return str(value["$float"])
    return str(value)


@blueprint.app_template_global("url_with")
def url_with(**changes: Any) -> str:
    """This page's URL with some query parameters changed (None drops one)."""
    args = request.args.to_dict(flat=False)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value if isinstance(value, list) else [value]
    query = urlencode([(k, v) for k, values in args.items() for v in values])
    return request.path + ("?" + query if query else "")


@blueprint.app_context_processor
def navigation() -> dict[str, Any]:
    """Tell every template who is looking (the replay button is the admin's)."""
    try:
        role, _ = auth.identify()
    except auth.Denied:
        role = None
    return {"role": role}


def _objectives() -> list[dict[str, Any]]:
    """The objectives for the pages' pickers, asked of the API at most once a minute per process."""
    # Counting every objective's runs takes a scan of run_objectives (bench/RESULTS.md, "Figures
    # from the code"), and the pickers only need the names, directions and rough counts.
    cached = current_app.extensions.get("pages.objectives")
    now = time.monotonic()
    if cached is None or now - cached[0] > OBJECTIVES_TTL_SECONDS:
        cached = current_app.extensions["pages.objectives"] = (now, api("/api/objectives")["objectives"])
    objectives: list[dict[str, Any]] = cached[1]
    return objectives


def _columns() -> list[str]:
    picked = [c.strip() for value in request.args.getlist("columns") for c in value.split(",") if c.strip()]
    columns = picked or list(DEFAULT_COLUMNS)
    # The run id is the link to each run, so it is always the first column.
    return ["run_id", *[c for c in dict.fromkeys(columns) if c != "run_id"]]


@blueprint.get("/")
def runs() -> tuple[str, int]:
    """List the runs that match the filter, a page at a time, with the total."""
    columns = _columns()
    order_by = request.args.get("order_by", "-created_at")
    limit = request.args.get("limit", "50")
    params = {
        "filter": request.args.get("filter", ""),
        "order_by": order_by,
        "limit": limit,
        "cursor": request.args.get("cursor"),
        "fields": ",".join(columns),
    }
    # The status column marks stalled runs.
    fields = [*columns, "stalled"] if "status" in columns and "stalled" not in columns else columns
    error = None
    page: dict[str, Any] = {"total": None, "runs": [], "next_cursor": None}
    try:
        page = api("/api/runs", {**params, "fields": ",".join(fields)})
    except ApiError as refused:
        error = _error_for_page(refused)
    download = {key: params[key] for key in ("filter", "order_by", "fields")}
    html = render_template(
        "runs.html",
        page=page,
        columns=columns,
        order_by=order_by,
        limit=limit,
        page_sizes=PAGE_SIZES,
        error=error,
        typed_columns=SCALAR_COLUMNS,
        stale_after_seconds=store.stale_after_seconds(),
        objectives=_objectives(),
        metrics=METRICS,
        extra_columns=[c for c in columns if c not in SCALAR_COLUMNS],
        download_jsonl="/api/runs?" + urlencode({**download, "format": "jsonl"}),
        download_csv="/runs.csv?"
        + urlencode({"filter": params["filter"], "order_by": order_by, "columns": params["fields"]}),
    )
    return _answer(html, error)


@blueprint.get("/runs.csv")
def runs_csv() -> Response | tuple[Response, int]:
    """Download every matching run's chosen columns as CSV, streamed in bounded memory."""
    columns = _columns()
    lines = store.stream_runs(
        request.args.get("filter") or None, request.args.get("order_by") or None, columns
    )
    try:
        # The first chunk is read now, so that a bad filter is a 400, not a broken download.
        first = next(lines, b"")
    except ValueError as error:
        return jsonify(error="bad_parameter", message=str(error)), 400
    return Response(
        stream_with_context(_csv_chunks(chain([first], lines), columns)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="runs.csv"'},
    )


def _csv_chunks(jsonl: Iterator[bytes], columns: list[str]) -> Iterator[str]:
    """Turn chunks of JSON lines into chunks of CSV rows, the header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for chunk in jsonl:
        for line in chunk.splitlines():
            if line:
                record = orjson.loads(line)
                writer.writerow([_csv_cell(record.get(column)) for column in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict) and "$float" in value:
        return value["$float"]
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


@blueprint.get("/runs/<path:run_id>")
def run(run_id: str) -> str | tuple[str, int]:
    """Show one run whole."""
    try:
        found = api(f"/api/runs/{_quote(run_id)}")["run"]
    except ApiError as refused:
        if refused.status == 404:
            return render_template("not_found.html", what=f"run {run_id}"), 404
        raise
    found_scaffolds = api(f"/api/runs/{_quote(run_id)}/scaffolds", {"limit": RUN_PAGE_SCAFFOLDS})
    history = api(f"/api/runs/{_quote(run_id)}/history")
    history.pop("query_ms", None)
    keys = list(history["series"])
    picked = [k for value in request.args.getlist("keys") for k in value.split(",") if k in keys]
    return render_template(
        "run.html",
        run=found,
        scaffolds=found_scaffolds,
        history=history,
        chosen_keys=picked or _default_curve_keys(keys),
        log_scale=request.args.get("log") == "1",
        smoothing=_smoothing(request.args.get("smoothing")),
        stale_after_seconds=store.stale_after_seconds(),
    )


def _default_curve_keys(keys: list[str]) -> list[str]:
    """The keys drawn when none is picked: losses and rewards first, a few in all."""
    preferred = [k for k in keys if "loss" in k or "reward" in k]
    return list(dict.fromkeys([*preferred, *keys]))[:DEFAULT_CURVE_KEYS]


def _smoothing(raw: str | None) -> float:
    """The smoothing weight from the URL: 0 (none) to 0.99; anything else is 0."""
    try:
        value = float(raw or 0)
    except ValueError:
        return 0.0
    return value if 0 <= value <= 0.99 else 0.0


def _quote(run_id: str) -> str:
    return quote(run_id, safe="")


def _scaffold_params() -> dict[str, str]:
    """The top scaffolds the Pareto and compare pages show: how many per run, and by what."""
    return {
        "scaffolds": request.args.get("scaffolds", TOP_SCAFFOLDS),
        "scaffolds_order_by": request.args.get("scaffolds_order_by", "molecules"),
    }


@blueprint.get("/compare")
def compare() -> tuple[str, int]:
    """Box plots of one objective per group over every matching run, and runs side by side."""
    objectives = _objectives()
    chosen = request.args.get("objective") or (objectives[0]["name"] if objectives else "")
    params = {
        "objective": chosen,
        "metric": request.args.get("metric", "raw_mean"),
        "by": request.args.get("by", "gradient_method"),
        "filter": request.args.get("filter", ""),
        **_scaffold_params(),
    }
    error = None
    groups: list[dict[str, Any]] = []
    if chosen:
        try:
            groups = api("/api/compare", params)["groups"]
        except ApiError as refused:
            error = _error_for_page(refused)
    side_by_side, side_error = _side_by_side(request.args.getlist("run"), params)
    overlay, overlay_error = _overlay(request.args.getlist("run"), params["filter"])
    html = render_template(
        "compare.html",
        overlay=overlay,
        overlay_error=overlay_error,
        params=params,
        objectives=objectives,
        metrics=METRICS,
        groups=groups,
        error=error,
        side_by_side=side_by_side,
        side_error=side_error,
        only_differences=request.args.get("only_differences") == "1",
        direction=next((o["direction"] for o in objectives if o["name"] == chosen), None),
        show_scaffolds=any("best_run_scaffolds" in group for group in groups),
    )
    return _answer(html, error or side_error)


def _overlay(run_ids: list[str], where: str) -> tuple[dict[str, Any], str | None]:
    """One key's curves for the picked runs (up to 20), or for the newest runs the filter matches."""
    key = request.args.get("curve_key") or DEFAULT_CURVE_KEY
    run_ids = list(dict.fromkeys(run_ids))
    overlay: dict[str, Any] = {"key": key, "runs": [], "log": request.args.get("curve_log") == "1"}
    if len(run_ids) > OVERLAY_RUNS:
        return overlay, f"Pick at most {OVERLAY_RUNS} runs to overlay their curves ({len(run_ids)} picked)."
    if run_ids:
        where = "run_id in (" + ", ".join("'" + r.replace("'", "''") + "'" for r in run_ids) + ")"
    try:
        found = api("/api/history", {"key": key, "filter": where, "max_runs": OVERLAY_RUNS})
    except ApiError as refused:
        return overlay, _error_for_page(refused)["message"]
    overlay["runs"] = [run for run in found["runs"] if run["steps"]]
    return overlay, None


def _side_by_side(
    run_ids: list[str], scaffold_params: Mapping[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    """The chosen runs' fields, config and summary row by row, and their top scaffolds."""
    run_ids = list(dict.fromkeys(run_ids))
    if not run_ids:
        return None, None
    low, high = SIDE_BY_SIDE_RUNS
    if not low <= len(run_ids) <= high:
        return None, f"Pick {low} to {high} runs to see them side by side ({len(run_ids)} picked)."
    runs = []
    for run_id in run_ids:
        try:
            runs.append(api(f"/api/runs/{_quote(run_id)}")["run"])
        except ApiError as refused:
            if refused.status != 404:
                raise
            return None, f"Run {run_id} does not exist."
    sections = {
        "run": [{name: run.get(name) for name in RUN_FIELDS_COMPARED} for run in runs],
        "config": [_flatten(run.get("config_json")) for run in runs],
        "summary": [_flatten(run.get("final_metrics_json")) for run in runs],
    }
    rows = {
        section: [
            {
                "key": key,
                "values": [values.get(key) for values in per_run],
                "differs": len({orjson.dumps(values.get(key)) for values in per_run}) > 1,
            }
            for key in sorted(set().union(*per_run), key=_natural)
        ]
        for section, per_run in sections.items()
    }
    scaffolds = _top_scaffolds_of(run_ids, scaffold_params)
    differ = scaffolds is not None and len({tuple(s["scaffold"] for s in found) for found in scaffolds}) > 1
    return {"runs": runs, "rows": rows, "scaffolds": scaffolds, "scaffolds_differ": differ}, None


def _top_scaffolds_of(
    run_ids: list[str], scaffold_params: Mapping[str, str]
) -> list[list[dict[str, Any]]] | None:
    """Each chosen run's top scaffolds, or None when none are asked for, or asked for wrongly.

    The store answers for every chosen run in one query: through the API it would be a request
    per run, and /api/runs/<id>/scaffolds carries the acyclic molecules' empty scaffold too.
    """
    if scaffold_params["scaffolds"] in ("", "0"):
        return None
    try:
        found = store.top_scaffolds_of_runs(
            run_ids, int(scaffold_params["scaffolds"]), scaffold_params["scaffolds_order_by"]
        )
    except ValueError:
        # The groups' answer from the API names the problem on the page; the view goes without.
        return None
    return [
        [{**s, "depiction_url": depiction_url(s["scaffold"])} for s in found[run_id]] for run_id in run_ids
    ]


def _natural(key: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))


def _flatten(document: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects to dotted keys; lists and scalars are leaves."""
    if not isinstance(document, dict) or "$float" in document:
        return {prefix: document} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@blueprint.get("/pareto")
def pareto() -> Response:
    """The Pareto front of two to six objectives over every matching run, and every run considered.

    One query answers both: the front, and the chart's points, written into the page (gzipped when
    the browser takes it): no second request, and no second query for values the first one read.
    """
    objectives = _objectives()
    default = ",".join(o["name"] for o in objectives[:2])
    params = {
        "objectives": request.args.get("objectives", default),
        "metric": request.args.get("metric", "raw_mean"),
        "filter": request.args.get("filter", ""),
        **_scaffold_params(),
    }
    error = None
    answer: dict[str, Any] = {"objectives": [], "considered": 0, "front": []}
    if params["objectives"]:
        try:
            answer = api("/api/pareto", {**params, "points": "true"})
        except ApiError as refused:
            error = _error_for_page(refused)
    chart = None
    if answer["objectives"]:
        chart = {key: answer[key] for key in ("objectives", "considered", "points")}
        # The chart draws the front's values; the scaffolds are the table's.
        chart["front"] = [{k: v for k, v in r.items() if k != "scaffolds"} for r in answer["front"]]
    html = render_template(
        "pareto.html",
        params=params,
        objectives=objectives,
        metrics=METRICS,
        answer=answer,
        error=error,
        chart_data=_script_json(chart) if chart else None,
        show_scaffolds=any("scaffolds" in member for member in answer["front"]),
    )
    response = Response(html, 400 if error else 200, mimetype="text/html")
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.set_data(gzip.compress(response.get_data(), 1))
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response


def _script_json(data: Any) -> Markup:
    """JSON for a <script type="application/json">, escaped as Flask's tojson does, encoded by orjson."""
    text = orjson.dumps(data).decode()
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return Markup(text)


@blueprint.get("/stats")
def stats() -> tuple[str, int]:
    """Runs per day by status, crash rate per group, counts by status."""
    params = {"by": request.args.get("by", "gradient_method"), "filter": request.args.get("filter", "")}
    error = None
    by_group: dict[str, Any] = {"total": 0, "groups": [], "per_day": []}
    by_status: dict[str, Any] = {"total": 0, "groups": [], "per_day": []}
    try:
        by_group = api("/api/stats", params)
        by_status = api("/api/stats", {**params, "by": "status"})
    except ApiError as refused:
        error = _error_for_page(refused)
    html = render_template("stats.html", params=params, stats=by_group, by_status=by_status, error=error)
    return _answer(html, error)


@blueprint.get("/scaffolds")
def scaffolds() -> tuple[str, int]:
    """Top scaffolds across runs (or those containing a pattern), drawn, and diversity per gradient method."""
    params = {
        "filter": request.args.get("filter", ""),
        "contains": request.args.get("contains", ""),
        "order_by": request.args.get("order_by", "runs"),
        "min_runs": request.args.get("min_runs", "1"),
    }
    error = None
    found: dict[str, Any] = {"scaffolds": []}
    diversity: dict[str, Any] = {"by": "gradient_method", "groups": []}
    try:
        found = api("/api/scaffolds", {**params, "limit": SCAFFOLDS_PAGE_SIZE})
        diversity = api("/api/diversity", {"by": "gradient_method", "filter": params["filter"]})
    except ApiError as refused:
        error = _error_for_page(refused)
    html = render_template("scaffolds.html", params=params, found=found, diversity=diversity, error=error)
    return _answer(html, error)


@blueprint.get("/events")
def events() -> tuple[str, int]:
    """The deliveries that failed or died, with their last error and a replay button."""
    params = {
        "status": request.args.get("status", "failed,dead"),
        "source": request.args.get("source", ""),
        "cursor": request.args.get("cursor"),
    }
    error = None
    page: dict[str, Any] = {"events": [], "next_cursor": None}
    try:
        page = api("/api/events", params)
    except ApiError as refused:
        error = _error_for_page(refused)
    return _answer(render_template("events.html", params=params, page=page, error=error), error)


@cache
def _plotly() -> tuple[bytes, bytes, str]:
    source = resources.files("plotly") / "package_data" / "plotly.min.js"
    script = source.read_bytes()
    return script, gzip.compress(script, 6), hashlib.sha256(script).hexdigest()[:16]


@assets.app_template_global("plotly_url")
def plotly_url() -> str:
    """The chart library's URL, named by its content so browsers may cache it for good."""
    return f"/assets/vendor/plotly-{_plotly()[2]}.min.js"


@assets.get("/assets/vendor/plotly-<version>.min.js")
def plotly_script(version: str) -> Response:
    """Serve plotly.js from the installed plotly package (gzipped when the browser takes it)."""
    script, compressed, digest = _plotly()
    if version != digest:
        abort(404)
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    response = Response(compressed if gzipped else script, mimetype="text/javascript")
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
